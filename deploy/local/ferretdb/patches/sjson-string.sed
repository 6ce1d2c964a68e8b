# FerretDB v1.24.2, internal/handler/sjson/string.go: the SQLite backend stores each document as
# JSON text, and every string value went through encoding/json.Marshal (reflection, a pooled
# encoder, a copy of the result): some 8% of FerretDB's CPU per inserted document (perf,
# 2026-12-02). This adds marshalJSONString, which returns the same bytes as json.Marshal for a
# string: the string quoted as is when it is printable ASCII with nothing json.Marshal escapes
# (`"`, `\`, `<`, `>`, `&`, control characters), and json.Marshal's own result otherwise. The
# string values here, and the keys (sjson-schema-key.sed, sjson-document-key.sed), use it:
# sjson.Marshal fell from 21% to 16% of FerretDB's CPU per inserted document (perf).
s|res, err := json\.Marshal(string(\*str))|res, err := marshalJSONString(string(*str))|
$a\
\
// marshalJSONString returns json.Marshal(s): directly for printable ASCII that needs no escape.\
func marshalJSONString(s string) ([]byte, error) {\
\tfor i := 0; i < len(s); i++ {\
\t\tif c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\\\' || c == '<' || c == '>' || c == '&' {\
\t\t\treturn json.Marshal(s)\
\t\t}\
\t}\
\
\tb := make([]byte, 0, len(s)+2)\
\tb = append(b, '"')\
\tb = append(b, s...)\
\
\treturn append(b, '"'), nil\
}

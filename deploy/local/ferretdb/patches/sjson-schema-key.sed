# FerretDB v1.24.2, internal/handler/sjson/schema.go: each document's schema quotes every key
# through encoding/json.Marshal; this uses marshalJSONString (sjson-string.sed), the same bytes
# for less CPU.
s|b, err = json\.Marshal(key); err != nil|b, err = marshalJSONString(key); err != nil|

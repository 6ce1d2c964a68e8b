# FerretDB v1.24.2, internal/util/fsql/db.go: every SQL statement builds two debug log records,
# `l.With(slog.Any("args", args))` and `fmt.Sprintf(">>> %s", query)`, before DebugContext
# looks at the level. slog's text handler formats the attributes in With at once, so each
# insert quoted its whole JSON document twice even with debug logging off: about a quarter of
# FerretDB's CPU under the pipeline's load (perf, 2026-12-02). This builds them only when
# debug logging is on.
s|^\t\([a-z]*\)\.l\.With(fields\.\.\.)\.DebugContext(\(.*\))$|\tif \1.l.Enabled(ctx, slog.LevelDebug) {\n\t\t\1.l.With(fields...).DebugContext(\2)\n\t}|

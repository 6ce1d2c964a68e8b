# FerretDB v1.24.2, internal/util/resource/resource.go: every iterator, transaction, rows and
# cursor is tracked for leaks: Track adds it to a pprof profile (which records the caller's
# stack) and sets a finalizer that panics if it is never closed; Untrack undoes both. That
# leak check is for FerretDB's own tests, yet it ran on every command: about 8% of FerretDB's
# CPU on a find or an update by `_id` (perf, 2026-12-02). This keeps it in debug builds only
# (the `ferretdb_debug` build tag, as debugbuild.Stack already does) and makes both a no-op
# otherwise: 10-13% less FerretDB CPU per update and find by `_id` (alternating builds).
s#^func \(Track\|Untrack\)(obj any, token \*Token) {$#&\n\tif !debugbuild.Enabled {\n\t\treturn\n\t}\n#

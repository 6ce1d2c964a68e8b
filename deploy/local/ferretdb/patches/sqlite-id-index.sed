# FerretDB v1.24.2, internal/backends/sqlite/metadata/metadata.go: the SQLite backend creates
# the `_id` index on `_ferretdb_sjson->"_id"` (registry.go, IndexesCreate) but filters, updates
# and deletes by `_ferretdb_sjson->'$._id'`. SQLite uses an expression index only when the
# expressions are the same, so every lookup by `_id` scanned and parsed the whole collection.
# Both spellings select the same JSON value; this makes the queries use the index's spelling.
s|IDColumn = DefaultColumn + "->'\$\._id'"|IDColumn = DefaultColumn + `->"_id"`|

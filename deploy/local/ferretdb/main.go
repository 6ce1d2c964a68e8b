// Command ferretdb-local runs FerretDB, a MongoDB-wire-compatible server, for local
// development and tests, on a SQLite backend (a folder of database files) or on a PostgreSQL
// backend (a running PostgreSQL server). It embeds FerretDB as a library so that the binary
// does not depend on FerretDB's build-time version file.
package main

import (
	"context"
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	dataDir := flag.String("data", "./data", "sqlite: directory for the SQLite databases")
	pragmas := flag.String("sqlite-pragmas", "",
		"sqlite: extra SQLite pragmas, comma-separated, e.g. synchronous(normal); FerretDB still "+
			"adds its defaults busy_timeout(10000), journal_mode(wal), auto_vacuum(none) for each "+
			"of them not given here")
	pgURL := flag.String("postgresql-url", "", "postgresql: connection URL, e.g. postgres://user@127.0.0.1:5432/ferretdb")
	flag.Parse()

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Handler:  *handler,
	}

	switch *handler {
	case "sqlite":
		dir, err := filepath.Abs(*dataDir)
		if err != nil {
			log.Fatalf("data directory: %v", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Fatalf("data directory: %v", err)
		}
		config.SQLiteURL = sqliteURL(dir, *pragmas)
		log.Printf("ferretdb-local: SQLite backend, URL %s", config.SQLiteURL)
	case "postgresql":
		if *pgURL == "" {
			log.Fatalf("-handler postgresql needs -postgresql-url")
		}
		config.PostgreSQLURL = *pgURL
		log.Printf("ferretdb-local: PostgreSQL backend, URL %s", *pgURL)
	default:
		log.Fatalf("unknown -handler %q (sqlite or postgresql)", *handler)
	}

	f, err := ferretdb.New(config)
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Printf("ferretdb-local listening on %s", *listen)
	f.Run(ctx)
	log.Printf("ferretdb-local stopped")
}

// sqliteURL is FerretDB's SQLite URL for a data directory: "file:<dir>/", with one _pragma
// query parameter per extra pragma. FerretDB (internal/backends/sqlite/metadata/pool/uri.go)
// keeps these and adds its own default for each of busy_timeout, journal_mode and auto_vacuum
// that is not among them.
func sqliteURL(dir, pragmas string) string {
	u := "file:" + dir + "/"
	query := url.Values{}
	for _, p := range strings.Split(pragmas, ",") {
		if p = strings.TrimSpace(p); p != "" {
			query.Add("_pragma", p)
		}
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

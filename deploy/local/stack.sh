#!/usr/bin/env bash
# Local infrastructure without Docker: a real Apache Kafka broker (KRaft, single node) and
# FerretDB (MongoDB wire protocol on SQLite, or on PostgreSQL 15 from Debian's packages),
# fetched, built, cached and run on loopback.
#
#   deploy/local/stack.sh start     fetch/build if needed, start both, wait until ready
#   deploy/local/stack.sh stop      stop both (SIGTERM, then SIGKILL after a grace period)
#   deploy/local/stack.sh status    say what is running
#   deploy/local/stack.sh logs      print where the logs are
#   deploy/local/stack.sh kafka-restart | db-stop | db-start   (used by fault tests)
#
# Environment:
#   CITYHELP_CACHE    downloads and builds, kept between runs   (default ~/.cache/cityhelp)
#   CITYHELP_RUN_DIR  data, logs and pid files                  (default <repo>/.run)
#   CITYHELP_FRESH=1  wipe broker and database data before start (used by `make test`)
#   KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGODB_PORT (27017), KAFKA_HEAP (512m)
#   KAFKA_JAVA_OPTS          extra JVM options for the broker (for example JMX:
#                            -Dcom.sun.management.jmxremote.port=…; default none)
#   CITYHELP_DB_BACKEND      FerretDB's backend: sqlite (default) or postgresql (docs/database.md)
#   CITYHELP_SQLITE_PRAGMAS  extra SQLite pragmas, comma-separated     (default synchronous(normal);
#                            empty: FerretDB's own defaults only, synchronous stays FULL)
#   CITYHELP_FERRETDB_GOGC   FerretDB's Go garbage-collector target (default 400: about a fifth
#                            less CPU per inserted document than Go's 100, for some 15 MB more)
#   POSTGRES_PORT (MONGODB_PORT + 1000), POSTGRES_USER (postgres: the user the server runs as
#                            when this script runs as root)
set -euo pipefail

tag=stack
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run="${CITYHELP_RUN_DIR:-$repo/.run}"
kafka_port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-9093}"
mongo_port="${MONGODB_PORT:-27017}"
heap="${KAFKA_HEAP:-512m}"
backend="${CITYHELP_DB_BACKEND:-sqlite}"
sqlite_pragmas="${CITYHELP_SQLITE_PRAGMAS-synchronous(normal)}"
ferret_gogc="${CITYHELP_FERRETDB_GOGC:-400}"
pg_port="${POSTGRES_PORT:-$((mongo_port + 1000))}"
pg_user="${POSTGRES_USER:-postgres}"
pg_bin=/usr/lib/postgresql/15/bin

need() {
  local cmd="$1" hint="$2"
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is missing. $hint"
}

case "$backend" in
  sqlite|postgresql) ;;
  *) die "CITYHELP_DB_BACKEND is '$backend'; set it to sqlite or postgresql (or unset it for sqlite)." ;;
esac

# ---------------------------------------------------------------- Kafka
kafka_libs() {
  need java "Install Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless)."
  need mvn "Install Maven (Debian: apt-get install -y maven)."
  local key; key="$(hash_of "$here/kafka/pom.xml")"
  local dir="$cache/kafka-$key"
  [ -f "$dir/.complete" ] || build_lock "$dir" "Kafka's jars"
  if [ ! -f "$dir/.complete" ]; then
    say "fetching Apache Kafka jars from Maven Central into $dir (first run only, about 30 s)..."
    rm -rf "$dir"; mkdir -p "$dir/libs"
    mvn -B -q -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dir/libs" >"$dir.mvn.log" 2>&1 \
      || die "Maven could not fetch Kafka (see $dir.mvn.log); check that Maven Central is reachable, then run again."
    say "fetched $(ls "$dir/libs" | wc -l) jars"
    touch "$dir/.complete"
  fi
  [ -z "${build_lock_fd:-}" ] || build_unlock
  echo "$dir/libs"
}

kafka_start() {
  if port_open "$kafka_port"; then say "Kafka already answers on 127.0.0.1:$kafka_port"; return; fi
  local libs; libs="$(kafka_libs)"
  mkdir -p "$run/kafka" "$run/logs"
  local props="$run/kafka/server.properties"
  sed -e "s#@DATA@#$run/kafka/data#" -e "s#@PORT@#$kafka_port#g" \
      -e "s#@CPORT@#$controller_port#g" "$here/kafka/server.properties.in" > "$props"
  if [ ! -f "$run/kafka/data/meta.properties" ]; then
    say "formatting Kafka storage in $run/kafka/data"
    kafka_format "$libs" "$props" "cityhelp-local-cluster-1" "$run/logs/kafka-format.log"
  fi
  say "starting Kafka on 127.0.0.1:$kafka_port (log: $run/logs/kafka.log)"
  kafka_run "$libs" "$props" "$kafka_port" kafka 256m
}

# ---------------------------------------------------------------- FerretDB
# FerretDB's module is copied from Go's module cache into the build folder and patched there
# (patches/*.sed, see each file's comment); the wrapper's go.mod points at the copy. Nothing
# is fetched beyond the module proxy, and the binary is rebuilt only when a source changes.
# FerretDB 1.24 needs Go 1.24 or newer to build; Debian 12's `golang` package is Go 1.19.
go_hint="Install Go 1.24 or newer from https://go.dev/dl/ (FerretDB 1.24 needs it; Debian 12's golang package is Go 1.19, too old), put its bin folder on PATH, then run again."
need_go() {
  need go "$go_hint"
  local version; version="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)"
  local major minor
  IFS=. read -r major minor _ <<<"${version#go}"
  if ! [[ "$major" =~ ^[0-9]+$ && "${minor%%[!0-9]*}" =~ ^[0-9]+$ ]] \
    || [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "${minor%%[!0-9]*}" -lt 24 ]; }; then
    die "Go is ${version:-of an unknown version} ($(command -v go)). $go_hint"
  fi
}

ferret_bin() {
  local key; key="$(hash_of "$here/ferretdb/main.go" "$here/ferretdb/go.mod" "$here/ferretdb/go.sum" "$here"/ferretdb/patches/*.sed)"
  local build="$cache/ferretdb-$key"
  local bin="$build/ferretdb-local"
  [ -x "$bin" ] || build_lock "$build" FerretDB
  if [ ! -x "$bin" ]; then
    need_go  # only to build: a cached binary needs no Go
    say "building FerretDB v1.24.2 (SQLite and PostgreSQL backends, patched: $(cd "$here/ferretdb/patches" && ls *.sed | tr '\n' ' '| sed 's/ $//')) into $bin"
    say "first build only: it compiles a pure-Go SQLite and takes about 2-4 minutes on 2 cores..."
    rm -rf "$build"; mkdir -p "$build/src"
    cp "$here/ferretdb/main.go" "$here/ferretdb/go.mod" "$here/ferretdb/go.sum" "$build/src/"
    ( cd "$build/src" && ferret_patched_module ) || die "could not prepare FerretDB's sources; check that the Go module proxy is reachable (GOPROXY), then run again."
    ( cd "$build/src" && GOFLAGS=-mod=mod go build -o "$bin.tmp" . ) &
    building $! FerretDB || die "FerretDB build failed; check that the Go module proxy is reachable (GOPROXY), then run again."
    mv "$bin.tmp" "$bin"
    say "FerretDB built"
  fi
  [ -z "${build_lock_fd:-}" ] || build_unlock
  echo "$bin"
}

# In the build folder: fetch FerretDB's module, copy it to ./ferretdb-module, apply the patches
# (each must change something, or the build stops), and replace the module with the copy.
ferret_patched_module() {
  local module="github.com/FerretDB/FerretDB" version="v1.24.2" dir patch
  dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$dir" ] || { say "go mod download gave no folder for $module@$version"; return 1; }
  cp -r "$dir" ferretdb-module && chmod -R u+w ferretdb-module
  for patch in "$here"/ferretdb/patches/*.sed; do
    local target; target="$(sed -n 's/^# FerretDB [^,]*, \([^:]*\):.*/\1/p' "$patch" | head -1)"
    [ -f "ferretdb-module/$target" ] || { say "patch $(basename "$patch") names no file of the module"; return 1; }
    cp "ferretdb-module/$target" "ferretdb-module/$target.orig"
    sed -i -f "$patch" "ferretdb-module/$target"
    if cmp -s "ferretdb-module/$target" "ferretdb-module/$target.orig"; then
      say "patch $(basename "$patch") changed nothing in $target"; return 1
    fi
    rm "ferretdb-module/$target.orig"
  done
  go mod edit -replace "$module=./ferretdb-module"
}

# ---------------------------------------------------------------- PostgreSQL
# For CITYHELP_DB_BACKEND=postgresql: Debian 12's PostgreSQL 15 on a cluster of the project's
# own in $run/postgres, on 127.0.0.1:$pg_port only (no Unix socket), trust auth. initdb and the
# server refuse to run as root; as root they run as $pg_user (the package's system user).
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

pg_start() {
  [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] \
    || die "PostgreSQL 15 is missing ($pg_bin/initdb); install it: CITYHELP_DB_BACKEND=postgresql deploy/local/tools.sh (or apt-get install -y postgresql)."
  if port_open "$pg_port"; then say "PostgreSQL already answers on 127.0.0.1:$pg_port"; return; fi
  local dir="$run/postgres"
  if [ "$(id -u)" -eq 0 ]; then
    id -u "$pg_user" >/dev/null 2>&1 \
      || die "PostgreSQL does not run as root and there is no user '$pg_user'; create one (useradd --system $pg_user) or set POSTGRES_USER to another."
  fi
  mkdir -p "$dir" "$run/logs"
  touch "$run/logs/postgres.log"
  [ "$(id -u)" -eq 0 ] && chown "$pg_user": "$dir" "$run/logs/postgres.log"
  pg_as test -w "$dir" \
    || die "user '$pg_user' cannot write $dir; make every folder above it searchable (chmod o+x), or set CITYHELP_RUN_DIR elsewhere."
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initialising a PostgreSQL cluster in $dir/data"
    rm -rf "$dir/data"
    pg_as "$pg_bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --auth=trust \
      >"$run/logs/postgres-initdb.log" 2>&1 \
      || { tail -30 "$run/logs/postgres-initdb.log" >&2; die "initdb failed (log above)."; }
    printf '%s\n' "# cityhelp (deploy/local/stack.sh): loopback only, no Unix socket" \
      "listen_addresses = '127.0.0.1'" "port = $pg_port" "unix_socket_directories = ''" \
      >>"$dir/data/postgresql.conf"
    printf '%s\n' "# cityhelp (deploy/local/stack.sh): trust on loopback only" \
      "host all all 127.0.0.1/32 trust" >"$dir/data/pg_hba.conf"
  fi
  say "starting PostgreSQL on 127.0.0.1:$pg_port (log: $run/logs/postgres.log)"
  pg_as "$pg_bin/pg_ctl" -D "$dir/data" -l "$run/logs/postgres.log" -o "-p $pg_port" -w -t 60 start \
    >/dev/null || { tail -30 "$run/logs/postgres.log" >&2; die "PostgreSQL did not start (log above)."; }
  head -1 "$dir/data/postmaster.pid" > "$run/postgres.pid"
  if [ -z "$("$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'")" ]; then
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres ferretdb \
      || die "could not create the database 'ferretdb' in PostgreSQL (see $run/logs/postgres.log)."
  fi
  say "PostgreSQL is ready"
}

# Fast shutdown (SIGINT: open transactions rolled back, a checkpoint, exit); immediate
# (SIGQUIT, WAL replayed at the next start) when that takes more than 30 s.
pg_stop() {
  local pidfile="$run/postgres/data/postmaster.pid" pid i
  [ -f "$pidfile" ] || { rm -f "$run/postgres.pid"; return 0; }
  pid="$(head -1 "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && [ "$(ps -o comm= -p "$pid")" = postgres ]; then
    say "stopping PostgreSQL (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "PostgreSQL did not stop in 30 s; immediate shutdown"; kill -QUIT "$pid" 2>/dev/null || true; sleep 2; }
  fi
  rm -f "$run/postgres.pid"
}

# ---------------------------------------------------------------- database
db_start() {
  if port_open "$mongo_port"; then say "a MongoDB-compatible server already answers on 127.0.0.1:$mongo_port"; return; fi
  local bin; bin="$(ferret_bin)"
  local args=(-listen "127.0.0.1:$mongo_port")
  if [ "$backend" = postgresql ]; then
    pg_start
    args+=(-handler postgresql -postgresql-url "postgres://postgres@127.0.0.1:$pg_port/ferretdb")
  else
    mkdir -p "$run/ferretdb/data"
    args+=(-handler sqlite -data "$run/ferretdb/data" -sqlite-pragmas "$sqlite_pragmas")
  fi
  mkdir -p "$run/logs"
  say "starting FerretDB on 127.0.0.1:$mongo_port, $backend backend (log: $run/logs/ferretdb.log)"
  GOGC="$ferret_gogc" nohup "$bin" "${args[@]}" >"$run/logs/ferretdb.log" 2>&1 &
  echo $! > "$run/ferretdb.pid"
  local i
  for i in $(seq 1 60); do
    if port_open "$mongo_port"; then say "FerretDB is ready after ${i}s"; return; fi
    kill -0 "$(cat "$run/ferretdb.pid")" 2>/dev/null || { tail -30 "$run/logs/ferretdb.log" >&2; die "FerretDB exited during start (log above)."; }
    sleep 1
  done
  die "FerretDB did not become ready in 60 s; see $run/logs/ferretdb.log"
}

# ---------------------------------------------------------------- stop
stop_pid() {
  # Kafka's controlled shutdown flushes and closes every partition: give it longer.
  local grace=15
  [ "$1" = kafka ] && grace=60
  stop_pidfile "$1" "$run/$1.pid" "$grace"
}

status() {
  local n
  for n in kafka ferretdb postgres; do
    if [ -f "$run/$n.pid" ] && kill -0 "$(cat "$run/$n.pid")" 2>/dev/null; then
      say "$n running (pid $(cat "$run/$n.pid"))"
    else
      say "$n not running"
    fi
  done
}

cmd="${1:-start}"
case "$cmd" in
  start)
    if [ "${CITYHELP_FRESH:-0}" = "1" ]; then
      stop_pid kafka; stop_pid ferretdb; pg_stop
      say "fresh start: wiping $run/kafka, $run/ferretdb and $run/postgres"
      rm -rf "$run/kafka" "$run/ferretdb" "$run/postgres"
    fi
    # Fetch and build first (in parallel), so that both servers start quickly afterwards.
    kafka_libs >/dev/null & kpid=$!
    ferret_bin >/dev/null & fpid=$!
    wait $kpid || die "fetching Kafka failed"
    wait $fpid || die "building FerretDB failed"
    db_start
    kafka_start
    ;;
  stop) stop_pid kafka; stop_pid ferretdb; pg_stop ;;
  status) status ;;
  logs) say "logs are in $run/logs"; ls -1 "$run/logs" 2>/dev/null || true ;;
  kafka-start) kafka_start ;;
  kafka-stop) stop_pid kafka ;;
  kafka-restart) stop_pid kafka; kafka_start ;;
  db-start) db_start ;;
  db-stop) stop_pid ferretdb ;;
  fetch) kafka_libs >/dev/null; ferret_bin >/dev/null ;;
  *) die "unknown command '$cmd' (start|stop|status|logs|fetch|kafka-restart|db-stop|db-start)" ;;
esac

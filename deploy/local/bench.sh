#!/usr/bin/env bash
# `make bench`: a fresh Kafka and FerretDB on ports of its own (Kafka 39092, controller 39093,
# database 27021, data in .run/bench; neither `make run`, `make test` nor `make chaos` is
# disturbed), then tests/bench: Kafka's and the database's ceilings, the pipeline at fixed offered
# loads through intake's HTTP API (wrk), P1 requests behind a P3 backlog; a table,
# bench/results.json and bench/*.png, and one last line `bench: e2e_per_s=… …`. Stops what it
# started.
#   deploy/local/bench.sh [--seconds 60] [--steps 250,500,1000,2000,max] [--backlog 50000] …
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/own-stack.sh"
own_stack bench 39092 39093 27021 quiet

echo "[bench] starting a fresh stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT, data in $CITYHELP_RUN_DIR)"
# The bench's ports lie in Linux's ephemeral range (32768-60999), so a passing outgoing
# connection can hold one for a moment: a start that fails is tried again, three times in all.
for attempt in 1 2 3; do
  "$here/stack.sh" start && break
  [ "$attempt" = 3 ] && { echo "[bench] ERROR: the stack did not start (see $CITYHELP_RUN_DIR/logs)"; exit 1; }
  echo "[bench] the stack did not start (attempt $attempt of 3); trying again in 10 s"
  sleep 10
done
"$bin/python" -m tools.topics_cli || exit 1

"$bin/python" -m tests.bench "$@"

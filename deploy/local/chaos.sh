#!/usr/bin/env bash
# `make chaos`: a fresh Kafka and FerretDB on their own ports (neither `make run` nor `make test`
# is disturbed: the suite restarts the broker and stops the database), the four services, a
# surge with crashes and outages, bad input and bad credentials; prints a table of figures and
# one `accepted=… lost=… duplicate_effects=…` line. Stops what it started.
#   deploy/local/chaos.sh [--requests N]   (default 20000)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.venv/bin"
cd "$repo"

export CITYHELP_RUN_DIR="${CITYHELP_CHAOS_RUN_DIR:-$repo/.run/chaos}"
export KAFKA_PORT="${CHAOS_KAFKA_PORT:-29092}" KAFKA_CONTROLLER_PORT="${CHAOS_KAFKA_CONTROLLER_PORT:-29093}"
export MONGODB_PORT="${CHAOS_MONGODB_PORT:-27019}"
export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export MONGODB_URI="mongodb://127.0.0.1:$MONGODB_PORT/?directConnection=true&retryWrites=false"
export CITYHELP_FRESH=1
# The services log JSON lines at WARNING and above during the surge (INFO would write a line
# per request per stage); the figures come from the topics and the database, not the logs.
export LOG_LEVEL="${CHAOS_LOG_LEVEL:-WARNING}"

cleanup() { mkdir -p "$CITYHELP_RUN_DIR/logs"; CITYHELP_FRESH=0 "$here/stack.sh" stop 2>>"$CITYHELP_RUN_DIR/logs/stack-stop.log"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

export CHAOS_STARTED="$(date +%s)"  # the last line's wall_s counts from here
echo "[chaos] starting a fresh stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT, data in $CITYHELP_RUN_DIR)"
"$here/stack.sh" start || exit 1
"$bin/python" -m shared.topics_cli || exit 1

"$bin/python" -m tests.chaos "$@"

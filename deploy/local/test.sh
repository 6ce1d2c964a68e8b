#!/usr/bin/env bash
# `make test`: a fresh Kafka and FerretDB on their own ports (so a running `make run` is not
# disturbed), then ruff, mypy and the whole pytest suite; stops what it started.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.venv/bin"
cd "$repo"

export CITYHELP_RUN_DIR="${CITYHELP_TEST_RUN_DIR:-$repo/.run/test}"
export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19093}"
export MONGODB_PORT="${TEST_MONGODB_PORT:-27018}"
export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export MONGODB_URI="mongodb://127.0.0.1:$MONGODB_PORT/?directConnection=true&retryWrites=false"
export CITYHELP_FRESH=1

cleanup() { CITYHELP_FRESH=0 "$here/stack.sh" stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
echo "[test] lint: ruff and mypy --strict"
"$bin/ruff" check . || exit 1
"$bin/ruff" format --check . || exit 1
"$bin/mypy" || exit 1

echo "[test] starting a fresh test stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT)"
"$here/stack.sh" start || exit 1
"$bin/python" -m shared.topics_cli || exit 1

echo "[test] pytest (unit, component, integration, e2e)"
"$bin/pytest" "$@"
status=$?
echo "[test] finished in $(( $(date +%s) - started ))s with exit code $status"
exit $status

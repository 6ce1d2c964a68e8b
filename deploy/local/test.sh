#!/usr/bin/env bash
# `make test`: a fresh Kafka and FerretDB on their own ports (so a running `make run` is not
# disturbed), then ruff, mypy and the whole pytest suite; stops what it started.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/own-stack.sh"
own_stack test 19092 19093 27018

started=$(date +%s)
echo "[test] lint: ruff and mypy --strict"
"$bin/ruff" check . || exit 1
"$bin/ruff" format --check . || exit 1
"$bin/mypy" || exit 1

echo "[test] starting a fresh test stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT)"
own_stack_start

echo "[test] pytest (unit, component, integration, e2e, browser)"
"$bin/pytest" "$@"
status=$?
echo "[test] finished in $(( $(date +%s) - started ))s with exit code $status"
exit $status

#!/usr/bin/env bash
# `make chaos`: a fresh Kafka and FerretDB on their own ports (neither `make run` nor `make test`
# is disturbed: the suite restarts the broker and stops the database), the four services, a
# surge with crashes and outages, bad input and bad credentials; prints a table of figures and
# one `accepted=… lost=… duplicate_effects=…` line. Stops what it started.
#   deploy/local/chaos.sh [--requests N]   (default 20000)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/own-stack.sh"
run_dir="${CITYHELP_CHAOS_RUN_DIR:-$repo/.run/chaos}"
own_stack "$run_dir" "${CHAOS_KAFKA_PORT:-29092}" "${CHAOS_KAFKA_CONTROLLER_PORT:-29093}" \
  "${CHAOS_MONGODB_PORT:-27019}" "$run_dir/logs/stack-stop.log"
# The services log JSON lines at WARNING and above during the surge (INFO would write a line
# per request per stage); the figures come from the topics and the database, not the logs.
export LOG_LEVEL="${CHAOS_LOG_LEVEL:-WARNING}"

export CHAOS_STARTED="$(date +%s)"  # the last line's wall_s counts from here
echo "[chaos] starting a fresh stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT, data in $CITYHELP_RUN_DIR)"
own_stack_start

"$bin/python" -m tests.chaos "$@"

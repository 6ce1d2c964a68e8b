#!/usr/bin/env bash
# `make chaos`: a fresh Kafka and FerretDB on their own ports (neither `make run` nor `make test`
# is disturbed: the suite restarts the broker and stops the database), the four services, a
# surge with crashes and outages, bad input and bad credentials; prints a table of figures and
# one `accepted=… lost=… duplicate_effects=…` line. Stops what it started.
#   deploy/local/chaos.sh [--requests N]   (default 20000)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/own-stack.sh"
own_stack chaos 29092 29093 27019 quiet  # the services log JSON lines at WARNING and above

export CHAOS_STARTED="$(date +%s)"  # the last line's wall_s counts from here
echo "[chaos] starting a fresh stack (Kafka $KAFKA_BOOTSTRAP, FerretDB 127.0.0.1:$MONGODB_PORT, data in $CITYHELP_RUN_DIR)"
own_stack_start

"$bin/python" -m tests.chaos "$@"

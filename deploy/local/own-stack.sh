# Sourced by test.sh and chaos.sh: a Kafka and a FerretDB of their own, on their own ports and
# in their own run dir, so that a running `make run` is not disturbed; wiped at each start and
# stopped on exit.
#   own_stack <run-dir> <kafka-port> <controller-port> <mongodb-port> [<stop-log>]
# sets here, repo, bin; exports the stack's variables and the services' KAFKA_BOOTSTRAP and
# MONGODB_URI; traps EXIT to stop the stack (its messages into <stop-log> when given).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.venv/bin"
cd "$repo"

own_stack() {
  export CITYHELP_RUN_DIR="$1" KAFKA_PORT="$2" KAFKA_CONTROLLER_PORT="$3" MONGODB_PORT="$4"
  export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  export MONGODB_URI="mongodb://127.0.0.1:$MONGODB_PORT/?directConnection=true&retryWrites=false"
  export CITYHELP_FRESH=1
  # A development machine: the services may run on the published development keys and secrets
  # (outside development they refuse to start with them).
  export CITYHELP_DEVELOPMENT=1
  _own_stack_stop_log="${5:-}"
  trap _own_stack_stop EXIT
  trap 'exit 130' INT TERM
}

_own_stack_stop() {
  if [ -n "$_own_stack_stop_log" ]; then
    mkdir -p "$(dirname "$_own_stack_stop_log")"
    CITYHELP_FRESH=0 "$here/stack.sh" stop 2>>"$_own_stack_stop_log"
  else
    CITYHELP_FRESH=0 "$here/stack.sh" stop
  fi
}

# Start the stack and create the contract's topics; exits on failure.
own_stack_start() {
  "$here/stack.sh" start || exit 1
  "$bin/python" -m tools.topics_cli || exit 1
}

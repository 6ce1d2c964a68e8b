# Sourced by test.sh, chaos.sh and bench.sh: a Kafka and a FerretDB of their own, on their own
# ports and in their own run dir, so that a running `make run` is not disturbed; wiped at each
# start and stopped on exit.
#   own_stack <name> <kafka-port> <controller-port> <mongodb-port> [quiet]
# The run dir is $CITYHELP_<NAME>_RUN_DIR (default .run/<name>); <NAME>_KAFKA_PORT,
# <NAME>_KAFKA_CONTROLLER_PORT and <NAME>_MONGODB_PORT move the ports (NAME: the name in capitals).
# "quiet": the services log at <NAME>_LOG_LEVEL (default WARNING; INFO would write a line per
# request per stage, and the figures come from the topics and the database, not the logs), and
# the stack's stop messages go to <run dir>/logs/stack-stop.log.
# Sets here, repo, bin; exports the stack's variables and the services' KAFKA_BOOTSTRAP and
# MONGODB_URI; traps EXIT to stop the stack.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.venv/bin"
cd "$repo"

own_stack() {
  local name="$1" upper="${1^^}"
  local run_dir="CITYHELP_${upper}_RUN_DIR" kafka="${upper}_KAFKA_PORT"
  local controller="${upper}_KAFKA_CONTROLLER_PORT" mongodb="${upper}_MONGODB_PORT"
  export CITYHELP_RUN_DIR="${!run_dir:-$repo/.run/$name}" KAFKA_PORT="${!kafka:-$2}"
  export KAFKA_CONTROLLER_PORT="${!controller:-$3}" MONGODB_PORT="${!mongodb:-$4}"
  export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  export MONGODB_URI="mongodb://127.0.0.1:$MONGODB_PORT/?directConnection=true&retryWrites=false"
  export CITYHELP_FRESH=1
  # A development machine: the services may run on the published development keys and secrets
  # (outside development they refuse to start with them).
  export CITYHELP_DEVELOPMENT=1
  _own_stack_stop_log=""
  if [ "${5:-}" = quiet ]; then
    local level="${upper}_LOG_LEVEL"
    export LOG_LEVEL="${!level:-WARNING}"
    _own_stack_stop_log="$CITYHELP_RUN_DIR/logs/stack-stop.log"
  fi
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

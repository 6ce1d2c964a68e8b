# Sourced by run.sh (`make run`): local-only keys for every role, so a newcomer can try each one:
# Open311 apps, a verifier, a command-centre desk and each department's board.
# Published here, so fit only for a development machine (CITYHELP_DEVELOPMENT=1); production sets
# its own through the environment (deploy/env.sample). A variable already set is kept, and the
# keys printed by run.sh are then not the ones in use.
DEV_OPEN311_KEY="dev-open311-key"
DEV_VERIFIER="dev-verifier" DEV_VERIFIER_KEY="dev-verifier-key"
DEV_COMMAND_DESK="dev-desk" DEV_COMMAND_KEY="dev-command-key"
DEV_BOARD_KEY_PREFIX="dev-board-"  # the medical board's key is dev-board-medical, and so on
_digest() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
_dev_command_digest="$(_digest "$DEV_COMMAND_KEY")"
_dev_boards=""
for _department in police community medical command; do
  _dev_boards+="${_dev_boards:+, }\"$_department\": \"$(_digest "$DEV_BOARD_KEY_PREFIX$_department")\""
done

export CITYHELP_DEVELOPMENT="${CITYHELP_DEVELOPMENT:-1}"
export INTAKE_OPEN311_API_KEYS="${INTAKE_OPEN311_API_KEYS:-$DEV_OPEN311_KEY}"
export VERIFY_REVIEWER_KEYS="${VERIFY_REVIEWER_KEYS:-{\"$DEV_VERIFIER\": \"$DEV_VERIFIER_KEY\"\}}"
# route is given the key's SHA-256 only, never the key.
export ROUTE_COMMAND_KEYS="${ROUTE_COMMAND_KEYS:-{\"$DEV_COMMAND_DESK\": \"$_dev_command_digest\"\}}"
export ROUTE_BOARD_KEYS="${ROUTE_BOARD_KEYS:-{$_dev_boards\}}"
unset -f _digest

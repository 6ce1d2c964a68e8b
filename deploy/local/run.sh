#!/usr/bin/env bash
# Starts the four services against the local stack, prints where to point curl, and stops
# everything (services, Kafka, FerretDB) on Ctrl-C, SIGINT or SIGTERM.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
run="${CITYHELP_RUN_DIR:-$repo/.run}"
py="$repo/.venv/bin/python"
mkdir -p "$run/logs"
pids=()

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "[run] stopping the services..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$here/stack.sh" stop
  echo "[run] stopped"
  exit 0
}
trap stop_all INT TERM EXIT

# Local-only development values (deploy/local/dev-keys.sh: the development flag, and a key for
# Open311, a verifier, a command-centre desk and each department's board); production sets its
# own through the environment. Without the flag the services refuse to start on their published
# secrets.
source "$here/dev-keys.sh"
export NOTIFY_CHANNELS="${NOTIFY_CHANNELS:-[\"sms\"]}"
export NOTIFY_SMS_URL="${NOTIFY_SMS_URL:-http://127.0.0.1:8099/messages}"

# A local SMS gateway that records what citizens would receive.
"$py" -m tools.fake_gateway --port 8099 >>"$run/logs/fake-sms-gateway.log" 2>&1 &
pids+=($!)
echo "[run] started the local SMS gateway on http://127.0.0.1:8099 (pid $!)"

declare -A ports=([intake]=8080 [verify]=8081 [route]=8082 [notify]=8083)
for svc in intake verify route notify; do
  "$py" -m "services.$svc" >>"$run/logs/$svc.log" 2>&1 &
  pids+=($!)
  echo "[run] started $svc (pid $!, log $run/logs/$svc.log)"
done

for svc in intake verify route notify; do
  port="${ports[$svc]}"
  for i in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      echo "[run] $svc ready on http://127.0.0.1:$port"; break
    fi
    [ "$i" -eq 60 ] && echo "[run] WARNING: $svc not ready after 60 s; see $run/logs/$svc.log"
    sleep 1
  done
done

cat <<MSG

The pipeline is running.
  Submit a request:
    curl -s -X POST http://127.0.0.1:8080/v1/requests -H 'Content-Type: application/json' \\
      -d '{"category":"medical","description":"需要胰岛素，家里老人独居","contact":{"name":"王女士","phone":"138 0013 8000"},"location":{"district":"jinshui","lat":34.77,"lon":113.66},"special_groups":["elderly","chronic_illness"],"language":"zh"}'
  Follow it:        curl -s http://127.0.0.1:8080/v1/requests/<request_id>
  API docs:         http://127.0.0.1:8080/docs
  Health, metrics:  http://127.0.0.1:808{0,1,2,3}/readyz  and  /metrics
  Messages sent:    curl -s http://127.0.0.1:8099/messages   (local SMS gateway)
  Play a department: README.md, section "Play a department" (kcat on help.dispatch.* and help.status)
  Local-only keys (make run only; production sets its own, see deploy/env.sample):
    Open311 api_key:           $DEV_OPEN311_KEY
    verifier, port 8081:       X-Verifier-Key: $DEV_VERIFIER_KEY   (verifier id $DEV_VERIFIER)
    command centre, port 8082: X-Command-Key: $DEV_COMMAND_KEY   (desk $DEV_COMMAND_DESK)
    department boards, 8082:   X-Board-Key: ${DEV_BOARD_KEY_PREFIX}<department>   (e.g. ${DEV_BOARD_KEY_PREFIX}medical)
      curl -s http://127.0.0.1:8082/v1/command/summary -H 'X-Command-Key: $DEV_COMMAND_KEY'
      curl -s http://127.0.0.1:8081/v1/review -H 'X-Verifier-Key: $DEV_VERIFIER_KEY'
    staff pages: http://127.0.0.1:8081/console (key $DEV_VERIFIER_KEY),
      http://127.0.0.1:8082/command (key $DEV_COMMAND_KEY),
      http://127.0.0.1:8082/board/medical (key ${DEV_BOARD_KEY_PREFIX}medical; police, community alike)
Press Ctrl-C to stop everything.
MSG

while true; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "[run] a service exited; see the logs in $run/logs"; stop_all
    fi
  done
  sleep 2
done

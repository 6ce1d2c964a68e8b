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

# Local-only development values; production sets its own through the environment. The flag lets
# the services run on the published development defaults of their secrets (tracking secret,
# phone hash key, webhook secret); without it they refuse to start.
export CITYHELP_DEVELOPMENT="${CITYHELP_DEVELOPMENT:-1}"
export INTAKE_OPEN311_API_KEYS="${INTAKE_OPEN311_API_KEYS:-dev-open311-key}"
export VERIFY_REVIEWER_KEYS="${VERIFY_REVIEWER_KEYS:-{\"dev-verifier\": \"dev-verifier-key\"\}}"
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

cat <<'MSG'

The pipeline is running.
  Submit a request:
    curl -s -X POST http://127.0.0.1:8080/v1/requests -H 'Content-Type: application/json' \
      -d '{"category":"medical","description":"需要胰岛素，家里老人独居","contact":{"name":"王女士","phone":"138 0013 8000"},"location":{"district":"jinshui","lat":34.77,"lon":113.66},"special_groups":["elderly","chronic_illness"],"language":"zh"}'
  Follow it:        curl -s http://127.0.0.1:8080/v1/requests/<request_id>
  API docs:         http://127.0.0.1:8080/docs
  Health, metrics:  http://127.0.0.1:808{0,1,2,3}/readyz  and  /metrics
  Messages sent:    curl -s http://127.0.0.1:8099/messages   (local SMS gateway)
  Local-only keys:  Open311 api_key=dev-open311-key; verifier X-Verifier-Key: dev-verifier-key
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

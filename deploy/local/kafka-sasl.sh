#!/usr/bin/env bash
# A local Kafka broker secured like production: SASL/SCRAM authentication, ACLs, deny by default.
# Separate from deploy/local/stack.sh's plaintext broker (different ports, run dir and pid file),
# it shows and tests the access matrix of deploy/local/kafka/sasl/acls.toml (docs/security.md).
#
#   deploy/local/kafka-sasl.sh start    fetch jars if needed, format (admin's SCRAM credential
#                                       bootstrapped), start, wait, create the contract's topics,
#                                       then every SCRAM user and ACL of acls.toml (as admin,
#                                       through the Admin API: kafka/sasl/apply.py)
#   deploy/local/kafka-sasl.sh stop     stop the broker (SIGTERM, SIGKILL after 15 s)
#   deploy/local/kafka-sasl.sh status   say whether it runs
#   deploy/local/kafka-sasl.sh apply    (re)create the users and ACLs of acls.toml
#   deploy/local/kafka-sasl.sh env <user>   print the KAFKA_* variables a service or client
#                                       would use to connect as <user> (e.g. svc-route, admin)
#
# Passwords are random per run dir, generated at first start into
# $CITYHELP_RUN_DIR/kafka-sasl/secrets/<user>.password (mode 600); none is in the repository.
#
# Environment:
#   CITYHELP_CACHE            downloads, shared with stack.sh      (default ~/.cache/cityhelp)
#   CITYHELP_RUN_DIR          data, logs, pid file and secrets     (default <repo>/.run/sasl)
#   KAFKA_SASL_PORT           SASL_PLAINTEXT listener for clients  (default 29092)
#   KAFKA_SASL_CONTROLLER_PORT  controller listener (PLAINTEXT)    (default 29093)
#   KAFKA_HEAP                broker heap                          (default 384m)
#   CITYHELP_FRESH=1          wipe the data before start
set -euo pipefail

tag=kafka-sasl
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run="${CITYHELP_RUN_DIR:-$repo/.run/sasl}"
port="${KAFKA_SASL_PORT:-29092}"
cport="${KAFKA_SASL_CONTROLLER_PORT:-29093}"
heap="${KAFKA_HEAP:-384m}"
sasl="$here/kafka/sasl"
state="$run/kafka-sasl"
secrets="$state/secrets"

python_bin() {
  if [ -x "$repo/.venv/bin/python" ]; then echo "$repo/.venv/bin/python"; else echo python3; fi
}

# The jars stack.sh fetches (same cache key: the hash of its pom.xml).
libs_dir() {
  local key; key="$(hash_of "$here/kafka/pom.xml")"
  local dir="$cache/kafka-$key"
  if [ ! -f "$dir/.complete" ]; then
    say "Kafka jars not cached yet; fetching them through stack.sh"
    command -v mvn >/dev/null 2>&1 || die "'mvn' is missing. Install Maven (Debian: apt-get install -y maven)."
    CITYHELP_CACHE="$cache" "$here/stack.sh" fetch >&2 || die "fetching the Kafka jars failed"
  fi
  echo "$dir/libs"
}

password_of() {
  local user="$1" file="$secrets/$1.password"
  if [ ! -f "$file" ]; then
    mkdir -p "$secrets"; chmod 700 "$secrets"
    ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file" )
  fi
  cat "$file"
}

principals() {  # the user names of acls.toml, one a line
  "$(python_bin)" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["principals"]))' \
    "$sasl/acls.toml"
}

as_admin() {  # as_admin <command...>: run with the KAFKA_* variables of the operator's admin
  ( cd "$repo" && KAFKA_BOOTSTRAP="127.0.0.1:$port" KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT \
      KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=admin \
      KAFKA_SASL_PASSWORD="$(password_of admin)" TOPIC_PREFIX= PYTHONPATH="$repo" "$@" )
}

apply_acls() {
  local name
  for name in $(principals); do password_of "$name" >/dev/null; done
  say "creating the SCRAM users and ACLs of $sasl/acls.toml (Admin API, as admin)"
  as_admin "$(python_bin)" "$sasl/apply.py" "$sasl/acls.toml" "$secrets" >&2 \
    || die "applying acls.toml failed (output above)"
}

create_topics() {
  say "creating the contract's topics as admin"
  as_admin "$(python_bin)" -m tools.topics_cli >&2 || die "creating topics failed"
}

start() {
  if port_open "$port"; then say "something already answers on 127.0.0.1:$port"; return; fi
  if [ "${CITYHELP_FRESH:-0}" = "1" ]; then say "fresh start: wiping $state"; rm -rf "$state"; fi
  libs="$(libs_dir)"
  mkdir -p "$state" "$run/logs"
  local props="$state/server.properties"
  ( umask 077; sed -e "s#@DATA@#$state/data#" -e "s#@PORT@#$port#g" -e "s#@CPORT@#$cport#g" \
      -e "s#@ADMIN_PASSWORD@#$(password_of admin)#" "$sasl/server.properties.in" > "$props" )
  local fresh=0
  if [ ! -f "$state/data/meta.properties" ]; then
    fresh=1
    say "formatting storage in $state/data with the admin's SCRAM credential"
    kafka_format "$libs" "$props" "cityhelp-sasl-cluster-1" "$run/logs/kafka-sasl-format.log" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(password_of admin)]"
  fi
  say "starting Kafka (SASL_PLAINTEXT) on 127.0.0.1:$port, controller $cport (log: $run/logs/kafka-sasl.log)"
  kafka_run "$libs" "$props" "$port" kafka-sasl 128m
  if [ "$fresh" = 1 ]; then create_topics; apply_acls; fi
}

stop() {
  [ -f "$run/kafka-sasl.pid" ] || { say "not running"; return 0; }
  stop_pidfile Kafka "$run/kafka-sasl.pid" 15
}

env_of() {
  local user="${1:?usage: kafka-sasl.sh env <user>}"
  [ -f "$secrets/$user.password" ] || die "no such user '$user' in $secrets (start the broker first)"
  printf 'KAFKA_BOOTSTRAP=127.0.0.1:%s\nKAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n' "$port"
  printf 'KAFKA_SASL_MECHANISM=SCRAM-SHA-512\nKAFKA_SASL_USERNAME=%s\nKAFKA_SASL_PASSWORD=%s\n' \
    "$user" "$(cat "$secrets/$user.password")"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status)
    if [ -f "$run/kafka-sasl.pid" ] && kill -0 "$(cat "$run/kafka-sasl.pid")" 2>/dev/null; then
      say "running (pid $(cat "$run/kafka-sasl.pid")) on 127.0.0.1:$port"
    else say "not running"; fi ;;
  apply) apply_acls ;;
  env) env_of "${2:-}" ;;
  *) die "unknown command '$1' (start|stop|status|apply|env <user>)" ;;
esac

# Sourced by stack.sh, kafka-sasl.sh and helm.sh after they set `tag` (the prefix of their
# messages): where the repository and the cache are, messages, and the steps of running a Kafka
# broker from the cached jars (format, start and wait, stop) that the plaintext and the SASL
# broker share.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CITYHELP_CACHE:-$HOME/.cache/cityhelp}"
log4j="-Dlog4j2.configurationFile=$here/kafka/log4j2.yaml"

say() { printf '[%s] %s\n' "$tag" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$tag" "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# kafka_format <libs> <props> <cluster-id> <log> [StorageTool options...]: format the storage
# of <props> once (a formatted one is left as it is).
kafka_format() {
  local libs="$1" props="$2" cluster="$3" log="$4"
  shift 4
  java -cp "$libs/*" "$log4j" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cluster" -c "$props" "$@" >"$log" 2>&1 \
    || { cat "$log" >&2; die "Kafka storage format failed (log above)."; }
}

# kafka_run <libs> <props> <port> <name> <min-heap>: start the broker of <props> (heap up to
# $heap), its output in $run/logs/<name>.log and its pid in $run/<name>.pid, and wait until it
# says it started and answers on <port> (120 s at most).
kafka_run() {
  local libs="$1" props="$2" port="$3" name="$4" min_heap="$5"
  local log="$run/logs/$name.log" pidfile="$run/$name.pid" i
  KAFKA_LOG_DIR="$run/logs" nohup java -Xms"$min_heap" -Xmx"$heap" -XX:+UseG1GC ${KAFKA_JAVA_OPTS:-} \
    "$log4j" -Dkafka.logs.dir="$run/logs" -cp "$libs/*" kafka.Kafka "$props" >"$log" 2>&1 &
  echo $! > "$pidfile"
  for i in $(seq 1 120); do
    if grep -q "Kafka Server started" "$log" 2>/dev/null && port_open "$port"; then
      say "Kafka is ready after ${i}s"; return
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -30 "$log" >&2; die "Kafka exited during start (log above)."; }
    [ $((i % 10)) -eq 0 ] && say "waiting for Kafka... ${i}s"
    sleep 1
  done
  die "Kafka did not become ready in 120 s; see $log"
}

# stop_pidfile <name> <pid-file> <grace-seconds>: SIGTERM, SIGKILL after the grace period;
# the pid file is removed. Nothing to do without the file.
stop_pidfile() {
  local name="$1" file="$2" grace="$3" pid i
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((grace * 2))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "$name did not stop in $grace s; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$file"
}

# build_lock <path> <what>: hold an exclusive lock on <path>.lock (until build_unlock or the
# shell's exit), so two starts that need the same download or build at once (`make test` while
# `make run` starts, two checkouts sharing the cache) take turns: the second waits, then finds it
# done, instead of both writing the same files.
build_lock() {
  mkdir -p "$(dirname "$1")"
  exec {build_lock_fd}>"$1.lock"
  if ! flock -n "$build_lock_fd"; then
    say "another start is fetching or building $2 into the same cache; waiting for it..."
    flock "$build_lock_fd"
  fi
}
build_unlock() { exec {build_lock_fd}>&-; }

# building <pid> <what>: wait for the background build <pid>, saying every 30 s that <what> is
# still building; returns the build's exit status.
building() {
  local pid="$1" what="$2" t=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5; t=$((t + 5))
    [ $((t % 30)) -eq 0 ] && say "still building $what... ${t}s"
  done
  wait "$pid"
}

# Redis for the local stack (sourced by stack.sh): the Debian redis-server, run from STACK_DIR.
# shellcheck shell=bash

REDIS_PORT=${REDIS_PORT:-16379}
REDIS_START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

redis_port() { echo "$REDIS_PORT"; }
redis_marker() { echo "--dir $STACK_DIR/redis "; }

ensure_redis_installed() {
  command -v redis-server >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "redis: redis-server not found on PATH (install it: sudo apt-get install -y redis-server)"
  command -v apt-get >/dev/null || die "redis: redis-server not found and apt-get is not available"
  local t0 log=$LOGS/install-redis.log; t0=$(now_us); mkdir -p "$LOGS"
  say "redis: installing Debian package redis-server (apt-get)…"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >>"$log" 2>&1; then
      tail -n 20 "$log" >&2; die "redis: apt-get install redis-server failed; full log: $log"
    fi
  fi
  command -v redis-server >/dev/null || die "redis: redis-server still not on PATH after apt-get install"
  say "redis: installed $(redis-server --version | awk '{print $3}') ($(since "$t0")); the system service is not used"
}


redis_preflight() {
  our_pid redis >/dev/null || require_port_free redis "$REDIS_PORT" REDIS_PORT
  ensure_redis_installed
}

redis_ping() {
  if command -v redis-cli >/dev/null; then
    [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
  else
    [[ $(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT; printf 'PING\r\n' >&3; head -c5 <&3" 2>/dev/null) == +PONG ]]
  fi
}
start_redis() {
  local t0 pid deadline; t0=$(now_us)
  if pid=$(our_pid redis); then
    redis_ping || die "redis: pid $pid is running but 127.0.0.1:$REDIS_PORT does not answer PING"
    say "redis: already running (pid $pid) on 127.0.0.1:$REDIS_PORT"; return 0
  fi
  mkdir -p "$STACK_DIR/redis"; rm -f "$(pidfile redis)"; rotate_log redis
  # --set-proc-title no keeps our argv (with --dir $STACK_DIR/redis) in /proc/PID/cmdline
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --dir "$STACK_DIR/redis" --daemonize yes --pidfile "$(pidfile redis)" --logfile "$(logfile redis)" \
    --appendonly yes --set-proc-title no </dev/null >>"$(logfile redis)" 2>&1 9>&- \
    || { show_log_tail redis; die "redis: redis-server failed to start"; }
  deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until pid=$(our_pid redis) && redis_ping; do
    if (( SECONDS >= deadline )); then
      show_log_tail redis
      pid=$(our_pid redis) && stop_pid redis "$pid"
      die "redis: no PONG from 127.0.0.1:$REDIS_PORT within ${REDIS_START_TIMEOUT} s"
    fi
    sleep 0.2
  done
  redis-server --version | awk "{print \$3}" | sed "s/v=//" >"$RUN/redis.version"
  say "redis: up on 127.0.0.1:$REDIS_PORT (pid $pid, $(since "$t0"))"
}


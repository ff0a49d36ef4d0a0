# Shared helpers of the local stack (sourced by stack.sh, never run): messages, pid files checked
# against /proc/PID/cmdline, ports, start-up waits, logs, stopping, Java and Maven.
#
# Each service file (redis.sh, kafka.sh, registry.sh) defines, for its service <svc>:
#   <svc>_port       the port status reports and checks
#   <svc>_marker     what must appear in /proc/PID/cmdline for a pid in run/<svc>.pid to be ours
#   <svc>_preflight  tools, installs and free ports, checked before anything is started
#   start_<svc>      start it (or find it running) and return when it answers
# shellcheck shell=bash

say() { printf '%s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "${t#0}"; }
since() { local d=$(( $(now_us) - $1 )); printf '%d.%d s' $((d / 1000000)) $((d % 1000000 / 100000)); }

port_of() { "$1_port"; }
pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOGS/$1.log"; }

# What must appear in /proc/PID/cmdline (args joined by spaces, plus a trailing space) for a pid
# from our pid file to be accepted as ours: the STACK_DIR path in an argument we passed.
marker() { "$1_marker"; }

cmdline_of() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline"; }
is_alive() {  # running and not a zombie
  local st
  [[ -e /proc/$1 ]] || return 1
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}
# Print the pid of our running instance of $1; fail if none (a stale pid file is left in place).
our_pid() {
  local f pid cmd
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] && is_alive "$pid" || return 1
  cmd=$(cmdline_of "$pid") || return 1
  [[ $cmd == *"$(marker "$1")"* ]] || return 1
  echo "$pid"
}

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_owner() {
  command -v ss >/dev/null || return 0
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n1 || true
}
require_port_free() {  # svc, port, env var name
  if tcp_open "$2"; then
    local who; who=$(port_owner "$2")
    die "$1: port 127.0.0.1:$2 ($3) is already in use by another process${who:+ ($who)}; stop it or set $3=<free port>"
  fi
}

http_status() {  # url -> prints HTTP status code (000 when nothing answers)
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    local hp=${1#http://}; local path=/${hp#*/}; hp=${hp%%/*}
    timeout 5 bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}; printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' '$path' '$hp' >&3; head -n1 <&3" 2>/dev/null \
      | awk '{print $2}' || echo 000
  fi
}

# Wait until command $4 succeeds for service $1 (pid $2), at most $3 s. If the process dies or
# time runs out: show its log, stop what we started, and fail naming the cause ($5).
await_ready() {  # svc pid timeout_s check_cmd what
  local svc=$1 pid=$2 limit=$3 check=$4 what=$5 deadline=$((SECONDS + $3))
  until "$check"; do
    is_alive "$pid" || { show_log_tail "$svc" 40; rm -f "$(pidfile "$svc")"; die "$svc: process $pid exited during startup (log: $(logfile "$svc"))"; }
    if (( SECONDS >= deadline )); then
      show_log_tail "$svc" 40
      say "$svc: stopping pid $pid after the failed start" >&2
      stop_pid "$svc" "$pid"; rm -f "$(pidfile "$svc")"
      die "$svc: $what within $limit s"
    fi
    sleep 0.5
  done
}

rss_mb() { awk '/^VmRSS/ {printf "%d MB", $2/1024}' "/proc/$1/status" 2>/dev/null || true; }

show_log_tail() {  # svc [n]
  local f; f=$(logfile "$1")
  if [[ -s $f ]]; then
    printf -- '---- last %s lines of %s ----\n' "${2:-30}" "$f" >&2
    tail -n "${2:-30}" "$f" >&2
    printf -- '----\n' >&2
  fi
}

rotate_log() { local f; f=$(logfile "$1"); [[ -s $f ]] && mv -f "$f" "$f.1"; : >"$f"; }

# Stop $2 (a verified pid of service $1): TERM, wait up to STOP_TIMEOUT, then KILL.
stop_pid() {
  local svc=$1 pid=$2 deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while is_alive "$pid"; do
    if (( SECONDS >= deadline )); then
      say "$svc: still running ${STOP_TIMEOUT} s after SIGTERM, sending SIGKILL to pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      local d2=$((SECONDS + 10))
      while is_alive "$pid" && (( SECONDS < d2 )); do sleep 0.2; done
      is_alive "$pid" && die "$svc: pid $pid survived SIGKILL"
      break
    fi
    sleep 0.2
  done
}


# ---------------------------------------------------------------------------------------------
# Java
java_major() {  # path -> major version number
  local v
  v=$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1) || return 1
  [[ -n $v ]] || return 1
  v=${v#1.}; echo "${v%%[.+-]*}"
}
find_java() {  # min_major [preferred_home] -> path of a java binary
  local min=$1 pref=${2:-} c m
  local cands=()
  [[ -n $pref ]] && cands+=("$pref/bin/java")
  [[ -n ${JAVA_HOME:-} ]] && cands+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null && cands+=("$(command -v java)")
  for c in /usr/lib/jvm/*/bin/java; do [[ -e $c ]] && cands+=("$c"); done
  for c in "${cands[@]}"; do
    [[ -x $c ]] || continue
    m=$(java_major "$c" 2>/dev/null) || continue
    (( m >= min )) && { echo "$c"; return 0; }
  done
  return 1
}
check_java_home() {  # svc VAR min: an explicit *_JAVA_HOME must exist and be new enough
  local home=${!2:-} m
  [[ -z $home ]] && return 0
  [[ -x $home/bin/java ]] || die "$1: $2=$home has no executable bin/java"
  m=$(java_major "$home/bin/java") || die "$1: cannot run $home/bin/java -version"
  (( m >= $3 )) || die "$1: $2=$home is Java $m; this needs Java $3+"
}

# ---------------------------------------------------------------------------------------------
# Installs (cached)
need_mvn() { command -v mvn >/dev/null || die "$1: mvn not found on PATH (needed once to fetch from Maven Central; apt-get install -y maven)"; }
run_mvn() {  # svc logfile args...
  local svc=$1 log=$2 rc=0; shift 2
  timeout "$MVN_TIMEOUT" mvn -B -q -Dstyle.color=never "$@" >"$log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    say "---- last 25 lines of $log ----" >&2
    tail -n 25 "$log" | sed 's/\x1b\[[0-9;]*m//g' >&2; say "----" >&2
    (( rc == 124 )) && die "$svc: mvn timed out after ${MVN_TIMEOUT} s (is Maven Central reachable?)"
    die "$svc: mvn failed (exit $rc) resolving from Maven Central; full log: $log"
  fi
}

CLEANUP_TMP=   # half-finished install dir, removed if we exit before it is complete
trap 'if [[ -n $CLEANUP_TMP ]]; then rm -rf "$CLEANUP_TMP"; fi' EXIT


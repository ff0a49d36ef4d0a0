#!/usr/bin/env bash
# Local service stack: Apache Kafka (KRaft, single broker+controller), Apicurio Registry 3.x
# (kafkasql storage, Confluent-compatible API) and Redis, all bound to 127.0.0.1.
#
#   tools/stack/stack.sh up     [svc...] [--with prometheus]   install (cached) + start, return when every service answers
#   tools/stack/stack.sh down   [svc...]   stop exactly the pids in our pid files (TERM, then KILL)
#   tools/stack/stack.sh status [svc...]   one line per service; exit 0 only if all listed are up
#   tools/stack/stack.sh logs   [svc] [-f] last lines of the logs (-f: follow one service)
#   services: redis kafka registry   (registry needs kafka: `up registry` starts kafka too)
#   optional: prometheus (tools/stack/prometheus.sh: its port, targets), only when named or --with
#
# Environment (defaults):
#   STACK_DIR=<repo>/.stack   data, logs, pid files (keep it git-ignored)
#   STACK_CACHE=$STACK_DIR/cache   unpacked Kafka jars / Apicurio app (downloads also stay in ~/.m2)
#   KAFKA_PORT=19092  KAFKA_CONTROLLER_PORT=19093  REGISTRY_PORT=18081  REDIS_PORT=16379
#   REGISTRY_MANAGEMENT_PORT=REGISTRY_PORT+1   Quarkus management interface (health/metrics, 3.1+)
#   KAFKA_VERSION / APICURIO_VERSION   default: the version property in tools/stack/{kafka,apicurio}/pom.xml
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx1g"  REGISTRY_HEAP_OPTS="-Xms128m -Xmx512m"
#   KAFKA_JAVA_OPTS / REGISTRY_JAVA_OPTS   extra JVM flags (e.g. -Dapicurio.ccompat.legacy-id-mode.enabled=true)
#   KAFKA_JAVA_HOME / REGISTRY_JAVA_HOME   force a JDK (Kafka 4.x needs 17+, Apicurio 3.1+ needs 21+;
#                      otherwise JAVA_HOME, `java` on PATH and /usr/lib/jvm/* are searched)
#   KAFKA_START_TIMEOUT=90  REGISTRY_START_TIMEOUT=120  REDIS_START_TIMEOUT=20  STOP_TIMEOUT=45 (s)
#   MVN_TIMEOUT=900 (s)  LOG_LINES=40
#
# This file is the dispatcher; lib.sh holds the shared helpers, and redis.sh, kafka.sh and
# registry.sh one service each (its settings, install, preflight and start).
set -euo pipefail

STACK_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$STACK_TOOLS/../.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
mkdir -p -m 0700 "$STACK_DIR" && chmod 0700 "$STACK_DIR"   # logs and data of the local services: owner only
STACK_DIR=$(cd "$STACK_DIR" && pwd)
STACK_CACHE=${STACK_CACHE:-$STACK_DIR/cache}
STOP_TIMEOUT=${STOP_TIMEOUT:-45}
MVN_TIMEOUT=${MVN_TIMEOUT:-900}
LOG_LINES=${LOG_LINES:-40}

RUN=$STACK_DIR/run
LOGS=$STACK_DIR/logs
ALL_SERVICES=(redis kafka registry)   # start order; what `up` with no names starts
OPTIONAL_SERVICES=(prometheus)        # started only when named (or `up --with prometheus`)

pom_prop() { sed -n "s:.*<$2>\(.*\)</$2>.*:\1:p" "$1" | head -n1; }

# shellcheck source=tools/stack/lib.sh
source "$STACK_TOOLS/lib.sh"
# shellcheck source=tools/stack/redis.sh
source "$STACK_TOOLS/redis.sh"
# shellcheck source=tools/stack/kafka.sh
source "$STACK_TOOLS/kafka.sh"
# shellcheck source=tools/stack/registry.sh
source "$STACK_TOOLS/registry.sh"
# shellcheck source=tools/stack/prometheus.sh
source "$STACK_TOOLS/prometheus.sh"

# ---------------------------------------------------------------------------------------------
parse_services() {  # args -> SERVICES array (in start order); `--with X` adds X to the default set
  SERVICES=()
  local names=() with=() s
  while [[ $# -gt 0 ]]; do
    case $1 in
      --with) [[ $# -ge 2 ]] || die "--with needs a service name"; with+=("$2"); shift 2 ;;
      --with=*) with+=("${1#--with=}"); shift ;;
      *) names+=("$1"); shift ;;
    esac
  done
  (( ${#names[@]} == 0 )) && names=("${ALL_SERVICES[@]}")
  names+=("${with[@]}")
  local want=" ${names[*]} "
  for s in "${names[@]}"; do
    case $s in redis|kafka|registry|prometheus) ;; *) die "unknown service '$s' (known: ${ALL_SERVICES[*]} ${OPTIONAL_SERVICES[*]})" ;; esac
  done
  for s in "${ALL_SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do [[ $want == *" $s "* ]] && SERVICES+=("$s"); done
  return 0
}

take_lock() {
  mkdir -p "$RUN" "$LOGS"
  exec 9>"$RUN/.lock"
  flock -w 300 9 || die "another stack.sh up/down holds $RUN/.lock for more than 300 s"
}

cmd_up() {
  parse_services "$@"
  # registry needs kafka
  if [[ " ${SERVICES[*]} " == *" registry "* && " ${SERVICES[*]} " != *" kafka "* ]]; then
    parse_services "${SERVICES[@]}" kafka
  fi
  take_lock
  local t0 s; t0=$(now_us)
  # 1. preflight: tools, installs and ports, before anything is started
  for s in "${SERVICES[@]}"; do "${s}_preflight"; done
  # 2. start in dependency order
  for s in "${SERVICES[@]}"; do "start_$s"; done
  say "stack: up (${SERVICES[*]}) in $(since "$t0"); data+logs in $STACK_DIR"
}

cmd_down() {
  # with no names: the optional services too (their pid files say whether they run)
  if (( $# == 0 )); then parse_services --with prometheus; else parse_services "$@"; fi
  take_lock
  local i s pid
  for (( i = ${#SERVICES[@]} - 1; i >= 0; i-- )); do   # reverse order: registry, kafka, redis
    s=${SERVICES[i]}
    if pid=$(our_pid "$s"); then
      local t0; t0=$(now_us)
      say "$s: stopping pid $pid…"
      stop_pid "$s" "$pid"
      rm -f "$(pidfile "$s")"
      say "$s: stopped ($(since "$t0"))"
    elif [[ -e $(pidfile "$s") ]]; then
      say "$s: not running (removed stale pid file $(pidfile "$s"))"
      rm -f "$(pidfile "$s")"
    else
      say "$s: not running"
    fi
  done
}

cmd_status() {
  parse_services "$@"
  local s pid state port rc=0 ver rss note
  printf '%-9s %-9s %-8s %-16s %-8s %-8s %s\n' SERVICE STATE PID ADDRESS RSS VERSION NOTE
  for s in "${SERVICES[@]}"; do
    port=$(port_of "$s"); ver=$(cat "$RUN/$s.version" 2>/dev/null || echo -); rss=-; note=
    if pid=$(our_pid "$s"); then
      rss=$(rss_mb "$pid")
      if tcp_open "$port"; then state=up; else state=starting; rc=3; note="port not open yet"; fi
    else
      pid=-; state=down; rc=3
      [[ -e $(pidfile "$s") ]] && note="stale pid file"
      tcp_open "$port" && note="${note:+$note; }port in use by another process"
    fi
    printf '%-9s %-9s %-8s %-16s %-8s %-8s %s\n' "$s" "$state" "$pid" "127.0.0.1:$port" "$rss" "$ver" "$note"
  done
  return $rc
}

cmd_logs() {
  local follow=0 svcs=() a
  for a in "$@"; do case $a in -f|--follow) follow=1 ;; *) svcs+=("$a") ;; esac; done
  parse_services "${svcs[@]}"
  if (( follow )); then
    (( ${#SERVICES[@]} == 1 )) || die "logs -f needs exactly one service"
    exec tail -n "$LOG_LINES" -F "$(logfile "${SERVICES[0]}")"
  fi
  for s in "${SERVICES[@]}"; do
    printf '==> %s (%s) <==\n' "$s" "$(logfile "$s")"
    if [[ -s $(logfile "$s") ]]; then tail -n "$LOG_LINES" "$(logfile "$s")"; else echo "(empty)"; fi
  done
}

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

cmd=${1:-}; shift || true
case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status "$@" ;;
  logs) cmd_logs "$@" ;;
  -h|--help|help|'') usage ;;
  *) usage >&2; exit 2 ;;
esac

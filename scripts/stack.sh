#!/usr/bin/env bash
# Local service stack: Apache Kafka (KRaft, single broker+controller), Apicurio Registry 3.x
# (kafkasql storage, Confluent-compatible API) and Redis, all bound to 127.0.0.1.
#
#   scripts/stack.sh up     [svc...]   install (cached) + start, return when every service answers
#   scripts/stack.sh down   [svc...]   stop exactly the pids in our pid files (TERM, then KILL)
#   scripts/stack.sh status [svc...]   one line per service; exit 0 only if all listed are up
#   scripts/stack.sh logs   [svc] [-f] last lines of the logs (-f: follow one service)
#   services: redis kafka registry   (registry needs kafka: `up registry` starts kafka too)
#
# Environment (defaults):
#   STACK_DIR=<repo>/.stack   data, logs, pid files (keep it git-ignored)
#   STACK_CACHE=$STACK_DIR/cache   unpacked Kafka jars / Apicurio app (downloads also stay in ~/.m2)
#   KAFKA_PORT=19092  KAFKA_CONTROLLER_PORT=19093  REGISTRY_PORT=18081  REDIS_PORT=16379
#   REGISTRY_MANAGEMENT_PORT=REGISTRY_PORT+1   Quarkus management interface (health/metrics, 3.1+)
#   KAFKA_VERSION / APICURIO_VERSION   default: the version property in stack/{kafka,apicurio}/pom.xml
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx1g"  REGISTRY_HEAP_OPTS="-Xms128m -Xmx512m"
#   KAFKA_JAVA_OPTS / REGISTRY_JAVA_OPTS   extra JVM flags (e.g. -Dapicurio.ccompat.legacy-id-mode.enabled=true)
#   KAFKA_JAVA_HOME / REGISTRY_JAVA_HOME   force a JDK (Kafka 4.x needs 17+, Apicurio 3.1+ needs 21+;
#                      otherwise JAVA_HOME, `java` on PATH and /usr/lib/jvm/* are searched)
#   KAFKA_START_TIMEOUT=90  REGISTRY_START_TIMEOUT=120  REDIS_START_TIMEOUT=20  STOP_TIMEOUT=45 (s)
#   MVN_TIMEOUT=900 (s)  LOG_LINES=40
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
mkdir -p -m 0700 "$STACK_DIR" && chmod 0700 "$STACK_DIR"   # logs and state of the stack are the owner's alone
STACK_DIR=$(cd "$STACK_DIR" && pwd)
STACK_CACHE=${STACK_CACHE:-$STACK_DIR/cache}

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
REGISTRY_PORT=${REGISTRY_PORT:-18081}
REGISTRY_MANAGEMENT_PORT=${REGISTRY_MANAGEMENT_PORT:-$((REGISTRY_PORT + 1))}
REDIS_PORT=${REDIS_PORT:-16379}

KAFKA_POM=$ROOT/stack/kafka/pom.xml
APICURIO_POM=$ROOT/stack/apicurio/pom.xml
pom_prop() { sed -n "s:.*<$2>\(.*\)</$2>.*:\1:p" "$1" | head -n1; }
KAFKA_VERSION=${KAFKA_VERSION:-$(pom_prop "$KAFKA_POM" kafka.version)}
APICURIO_VERSION=${APICURIO_VERSION:-$(pom_prop "$APICURIO_POM" apicurio.version)}

KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
REGISTRY_HEAP_OPTS=${REGISTRY_HEAP_OPTS:--Xms128m -Xmx512m}
REGISTRY_JAVA_OPTS=${REGISTRY_JAVA_OPTS:-}    # extra -D/-XX flags for the registry JVM
KAFKA_JAVA_OPTS=${KAFKA_JAVA_OPTS:-}          # extra flags for the broker JVM
# kafkasql journal/snapshot consumer poll (Apicurio default 5000 ms; the startup snapshot scan waits
# for empty polls, so 2000 ms saves ~6 s per registry start against a local broker)
REGISTRY_POLL_TIMEOUT_MS=${REGISTRY_POLL_TIMEOUT_MS:-2000}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
REGISTRY_START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}
REDIS_START_TIMEOUT=${REDIS_START_TIMEOUT:-20}
STOP_TIMEOUT=${STOP_TIMEOUT:-45}
MVN_TIMEOUT=${MVN_TIMEOUT:-900}
LOG_LINES=${LOG_LINES:-40}

RUN=$STACK_DIR/run
LOGS=$STACK_DIR/logs
ALL_SERVICES=(redis kafka registry)

# ---------------------------------------------------------------------------------------------
say() { printf '%s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "${t#0}"; }
since() { local d=$(( $(now_us) - $1 )); printf '%d.%d s' $((d / 1000000)) $((d % 1000000 / 100000)); }

port_of() {
  case $1 in
    redis) echo "$REDIS_PORT" ;; kafka) echo "$KAFKA_PORT" ;; registry) echo "$REGISTRY_PORT" ;;
  esac
}
pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOGS/$1.log"; }

# What must appear in /proc/PID/cmdline (args joined by spaces, plus a trailing space) for a pid
# from our pid file to be accepted as ours: the STACK_DIR path in an argument we passed.
marker() {
  case $1 in
    redis) echo "--dir $STACK_DIR/redis " ;;
    *)     echo "-Dstack.service=$1 -Dstack.dir=$STACK_DIR " ;;
  esac
}

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
registry_java_min() { case $APICURIO_VERSION in 2.*|3.0.*) echo 17 ;; *) echo 21 ;; esac; }

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

KAFKA_HOME_DIR=
install_kafka() {
  local hash; hash=$(sha256sum "$KAFKA_POM" | cut -c1-8)
  KAFKA_HOME_DIR=$STACK_CACHE/kafka-$KAFKA_VERSION-$hash
  [[ -f $KAFKA_HOME_DIR/.complete ]] && return 0
  local t0 tmp; t0=$(now_us); tmp=$KAFKA_HOME_DIR.tmp.$$
  need_mvn kafka
  say "kafka: resolving jars from Maven Central (org.apache.kafka:kafka_2.13:$KAFKA_VERSION)…"
  rm -rf "$tmp"; mkdir -p "$tmp" "$LOGS"; CLEANUP_TMP=$tmp
  run_mvn kafka "$LOGS/install-kafka.log" -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$tmp/libs"
  [[ -f $tmp/libs/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka: kafka_2.13-$KAFKA_VERSION.jar missing after mvn (see $LOGS/install-kafka.log)"
  touch "$tmp/.complete"; rm -rf "$KAFKA_HOME_DIR"; mv "$tmp" "$KAFKA_HOME_DIR"; CLEANUP_TMP=
  say "kafka: $(ls "$KAFKA_HOME_DIR/libs" | wc -l) jars cached in $KAFKA_HOME_DIR ($(since "$t0"))"
}

APICURIO_HOME_DIR=
install_apicurio() {
  APICURIO_HOME_DIR=$STACK_CACHE/apicurio-$APICURIO_VERSION
  [[ -f $APICURIO_HOME_DIR/.complete ]] && return 0
  local t0 tmp tgz; t0=$(now_us); tmp=$APICURIO_HOME_DIR.tmp.$$
  need_mvn registry
  say "registry: fetching io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all from Maven Central (~150 MB)…"
  rm -rf "$tmp"; mkdir -p "$tmp/app" "$LOGS"; CLEANUP_TMP=$tmp
  run_mvn registry "$LOGS/install-registry.log" -f "$APICURIO_POM" -Dapicurio.version="$APICURIO_VERSION" \
    dependency:copy -DoutputDirectory="$tmp/dl"
  tgz=$(ls "$tmp"/dl/apicurio-registry-app-*-all.tar.gz 2>/dev/null | head -n1)
  [[ -n $tgz ]] || die "registry: no apicurio-registry-app-*-all.tar.gz after mvn (see $LOGS/install-registry.log)"
  tar -xzf "$tgz" -C "$tmp/app" || die "registry: cannot unpack $tgz"
  rm -rf "$tmp/dl"   # the tarball stays in ~/.m2
  if [[ -f $tmp/app/quarkus-run.jar ]]; then
    echo quarkus-run.jar >"$tmp/launcher"                      # 3.1+: fast-jar
  else
    (cd "$tmp/app" && ls ./*-runner.jar 2>/dev/null | head -n1 | sed 's:^\./::') >"$tmp/launcher"  # 3.0.x: legacy-jar
  fi
  [[ -s $tmp/launcher ]] || die "registry: neither quarkus-run.jar nor *-runner.jar in $tgz"
  touch "$tmp/.complete"; rm -rf "$APICURIO_HOME_DIR"; mv "$tmp" "$APICURIO_HOME_DIR"; CLEANUP_TMP=
  say "registry: Apicurio Registry $APICURIO_VERSION cached in $APICURIO_HOME_DIR ($(since "$t0"))"
}

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

# ---------------------------------------------------------------------------------------------
# Redis
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

# ---------------------------------------------------------------------------------------------
# Kafka
KAFKA_JAVA=
write_kafka_config() {
  local d=$STACK_DIR/kafka
  mkdir -p "$d/data"
  cp -f "$ROOT/stack/kafka/log4j2.properties" "$d/log4j2.properties"
  cat >"$d/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat >"$d/server.properties" <<EOF
# Generated by scripts/stack.sh on every 'up' (edit the script, not this file).
# Single node, KRaft combined mode, static quorum of one voter.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.cleaner.enable=true
log.retention.hours=168

# 2-core machine
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
EOF
}
kafka_tool() {  # Class args... : run an org.apache.kafka.tools CLI class against our broker
  local cls=$1; shift
  timeout 60 "$KAFKA_JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$STACK_DIR/kafka/tools-log4j2.properties" \
    -cp "$KAFKA_HOME_DIR/libs/*" "org.apache.kafka.tools.$cls" --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$@"
}
kafka_admin_ok() {  # a real Admin round trip: describeCluster
  local out
  out=$(timeout 30 "$KAFKA_JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$STACK_DIR/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_HOME_DIR/libs/*" org.apache.kafka.tools.ClusterTool cluster-id \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" 2>/dev/null) || return 1
  [[ $out == *"Cluster ID:"* ]]
}
kafka_ready() { tcp_open "$KAFKA_PORT" && kafka_admin_ok; }
wait_kafka() {  # pid
  await_ready kafka "$1" "$KAFKA_START_TIMEOUT" kafka_ready "broker did not answer on 127.0.0.1:$KAFKA_PORT"
}
start_kafka() {
  local t0 pid; t0=$(now_us)
  if pid=$(our_pid kafka); then
    wait_kafka "$pid" "$t0"
    say "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"; return 0
  fi
  write_kafka_config
  local d=$STACK_DIR/kafka
  if [[ ! -f $d/data/meta.properties ]]; then
    [[ -s $d/cluster.id ]] || head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$d/cluster.id"
    say "kafka: formatting storage $d/data (cluster id $(cat "$d/cluster.id"))"
    mkdir -p "$LOGS"
    "$KAFKA_JAVA" -Xmx256m -Dlog4j2.configurationFile="$d/tools-log4j2.properties" \
      -cp "$KAFKA_HOME_DIR/libs/*" kafka.tools.StorageTool format \
      -t "$(cat "$d/cluster.id")" -c "$d/server.properties" --ignore-formatted >"$LOGS/kafka-format.log" 2>&1 \
      || { cat "$LOGS/kafka-format.log" >&2; die "kafka: storage format failed"; }
  fi
  rm -f "$(pidfile kafka)"; rotate_log kafka
  # shellcheck disable=SC2086
  setsid "$KAFKA_JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dstack.service=kafka -Dstack.dir="$STACK_DIR" \
    -Dlog4j2.configurationFile="$d/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    $KAFKA_JAVA_OPTS -cp "$KAFKA_HOME_DIR/libs/*" kafka.Kafka "$d/server.properties" \
    </dev/null >>"$(logfile kafka)" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$(pidfile kafka)"
  sleep 0.2
  our_pid kafka >/dev/null || is_alive "$pid" || { show_log_tail kafka; rm -f "$(pidfile kafka)"; die "kafka: java exited immediately"; }
  wait_kafka "$pid" "$t0"
  echo "$KAFKA_VERSION" >"$RUN/kafka.version"
  say "kafka: up on 127.0.0.1:$KAFKA_PORT (pid $pid, $(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------
# Apicurio Registry
REGISTRY_JAVA=
registry_ready() { [[ $(http_status "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects") == 200 ]]; }
wait_registry() {  # pid
  await_ready registry "$1" "$REGISTRY_START_TIMEOUT" registry_ready \
    "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects did not answer 200"
}
start_registry() {
  local t0 pid d=$STACK_DIR/apicurio; t0=$(now_us)
  if pid=$(our_pid registry); then
    wait_registry "$pid"
    say "registry: already running (pid $pid) on 127.0.0.1:$REGISTRY_PORT"; return 0
  fi
  tcp_open "$KAFKA_PORT" || die "registry: Kafka is not answering on 127.0.0.1:$KAFKA_PORT (start it first: $0 up kafka)"
  mkdir -p "$d/tmp"; rm -f "$(pidfile registry)"; rotate_log registry
  case $APICURIO_VERSION in
    3.0.*)  # 3.0.x creates its journal with the broker's default retention (7 days: data loss) and
            # 3.1+ refuses to start on such a topic; create/fix both topics the way 3.1+ does.
      local t
      for t in kafkasql-journal kafkasql-snapshots; do
        kafka_tool TopicCommand --create --if-not-exists --topic "$t" --partitions 1 --replication-factor 1 \
          --config cleanup.policy=delete --config retention.ms=-1 --config retention.bytes=-1 >/dev/null \
          && kafka_tool ConfigCommand --alter --entity-type topics --entity-name "$t" \
               --add-config retention.ms=-1,retention.bytes=-1 >/dev/null \
          || die "registry: could not create/configure Kafka topic $t for kafkasql storage"
      done ;;
  esac
  local launcher; launcher=$(cat "$APICURIO_HOME_DIR/launcher")
  # storage: kafkasql = every change is a record in the compacted topic kafkasql-journal of our
  # Kafka, replayed on start, so artifacts and global/content ids survive restarts.
  # shellcheck disable=SC2086
  (cd "$APICURIO_HOME_DIR/app" && exec setsid "$REGISTRY_JAVA" $REGISTRY_HEAP_OPTS -XX:+UseG1GC \
    -Djava.awt.headless=true -Dstack.service=registry -Dstack.dir="$STACK_DIR" \
    -Djava.io.tmpdir="$d/tmp" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
    -Dquarkus.http.access-log.enabled=false \
    -Dapicurio.storage.kind=kafkasql \
    -Dapicurio.kafkasql.bootstrap.servers="127.0.0.1:$KAFKA_PORT" \
    -Dapicurio.kafkasql.consumer.poll.timeout="$REGISTRY_POLL_TIMEOUT_MS" \
    -Dapicurio.storage.snapshot.location="$d/tmp" -Dapicurio.import.work-dir="$d/tmp" \
    $REGISTRY_JAVA_OPTS -jar "$launcher" </dev/null >>"$(logfile registry)" 2>&1 9>&-) &
  pid=$!
  echo "$pid" >"$(pidfile registry)"
  sleep 0.2
  wait_registry "$pid"
  our_pid registry >/dev/null || die "registry: pid $pid does not look like our registry (cmdline: $(cmdline_of "$pid"))"
  echo "$APICURIO_VERSION" >"$RUN/registry.version"
  say "registry: up on http://127.0.0.1:$REGISTRY_PORT (pid $pid, $(since "$t0")); Confluent API at /apis/ccompat/v7"
}

# ---------------------------------------------------------------------------------------------
parse_services() {  # args -> SERVICES array (in start order)
  SERVICES=()
  local want=" $* " s
  [[ $# -eq 0 ]] && { SERVICES=("${ALL_SERVICES[@]}"); return; }
  for s in "$@"; do
    case $s in redis|kafka|registry) ;; *) die "unknown service '$s' (known: ${ALL_SERVICES[*]})" ;; esac
  done
  for s in "${ALL_SERVICES[@]}"; do [[ $want == *" $s "* ]] && SERVICES+=("$s"); done
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
  for s in "${SERVICES[@]}"; do
    case $s in
      redis)
        our_pid redis >/dev/null || require_port_free redis "$REDIS_PORT" REDIS_PORT
        ensure_redis_installed ;;
      kafka)
        check_java_home kafka KAFKA_JAVA_HOME 17
        KAFKA_JAVA=$(find_java 17 "${KAFKA_JAVA_HOME:-}") \
          || die "kafka: no Java 17+ found (java on PATH, JAVA_HOME, /usr/lib/jvm/*); install openjdk-17-jre-headless or set KAFKA_JAVA_HOME"
        if ! our_pid kafka >/dev/null; then
          require_port_free kafka "$KAFKA_PORT" KAFKA_PORT
          require_port_free kafka "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
        fi
        install_kafka ;;
      registry)
        local min; min=$(registry_java_min)
        check_java_home registry REGISTRY_JAVA_HOME "$min"
        REGISTRY_JAVA=$(find_java "$min" "${REGISTRY_JAVA_HOME:-}") \
          || die "registry: Apicurio Registry $APICURIO_VERSION needs Java $min+, none found (java on PATH, JAVA_HOME, /usr/lib/jvm/*); set REGISTRY_JAVA_HOME=<jdk $min+>, or APICURIO_VERSION=3.0.9 which runs on Java 17"
        if ! our_pid registry >/dev/null; then
          require_port_free registry "$REGISTRY_PORT" REGISTRY_PORT
          require_port_free registry "$REGISTRY_MANAGEMENT_PORT" REGISTRY_MANAGEMENT_PORT
        fi
        install_apicurio ;;
    esac
  done
  # 2. start in dependency order
  for s in "${SERVICES[@]}"; do "start_$s"; done
  say "stack: up (${SERVICES[*]}) in $(since "$t0"); data+logs in $STACK_DIR"
}

cmd_down() {
  parse_services "$@"
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

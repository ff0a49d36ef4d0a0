# Apicurio Registry 3.x for the local stack (sourced by stack.sh): kafkasql storage in our Kafka,
# Confluent-compatible API; the server distribution from Maven Central (apicurio/pom.xml here).
# shellcheck shell=bash

REGISTRY_PORT=${REGISTRY_PORT:-18081}
REGISTRY_MANAGEMENT_PORT=${REGISTRY_MANAGEMENT_PORT:-$((REGISTRY_PORT + 1))}
APICURIO_POM=$STACK_TOOLS/apicurio/pom.xml
APICURIO_VERSION=${APICURIO_VERSION:-$(pom_prop "$APICURIO_POM" apicurio.version)}
REGISTRY_HEAP_OPTS=${REGISTRY_HEAP_OPTS:--Xms128m -Xmx512m}
REGISTRY_JAVA_OPTS=${REGISTRY_JAVA_OPTS:-}    # extra -D/-XX flags for the registry JVM
# kafkasql journal/snapshot consumer poll (Apicurio default 5000 ms; the startup snapshot scan waits
# for empty polls, so 2000 ms saves ~6 s per registry start against a local broker)
REGISTRY_POLL_TIMEOUT_MS=${REGISTRY_POLL_TIMEOUT_MS:-2000}
REGISTRY_START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}

registry_port() { echo "$REGISTRY_PORT"; }
registry_marker() { echo "-Dstack.service=registry -Dstack.dir=$STACK_DIR "; }
registry_java_min() { case $APICURIO_VERSION in 2.*|3.0.*) echo 17 ;; *) echo 21 ;; esac; }

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

REGISTRY_JAVA=
registry_preflight() {
  local min; min=$(registry_java_min)
  check_java_home registry REGISTRY_JAVA_HOME "$min"
  REGISTRY_JAVA=$(find_java "$min" "${REGISTRY_JAVA_HOME:-}") \
    || die "registry: Apicurio Registry $APICURIO_VERSION needs Java $min+, none found (java on PATH, JAVA_HOME, /usr/lib/jvm/*); set REGISTRY_JAVA_HOME=<jdk $min+>, or APICURIO_VERSION=3.0.9 which runs on Java 17"
  if ! our_pid registry >/dev/null; then
    require_port_free registry "$REGISTRY_PORT" REGISTRY_PORT
    require_port_free registry "$REGISTRY_MANAGEMENT_PORT" REGISTRY_MANAGEMENT_PORT
  fi
  install_apicurio
}

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


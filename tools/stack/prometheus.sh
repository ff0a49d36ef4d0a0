# Prometheus for the local stack (sourced by stack.sh): the Debian `prometheus` package, run as
# our own process on its own port and data dir under STACK_DIR (the Debian system service is
# never used; where no init runs, the package does not start it either).
#
# Optional: `stack.sh up --with prometheus` (or `up prometheus`). The scrape targets come from
#   PROMETHEUS_TARGETS="api=127.0.0.1:8080,consumer=127.0.0.1:8081"  (job=host:port, comma separated;
#                      default: the service's default API and consumer ports)
#   PROMETHEUS_PORT=19090  PROMETHEUS_SCRAPE_INTERVAL=5s  PROMETHEUS_START_TIMEOUT=30 (s)
# The generated config is $STACK_DIR/prometheus/prometheus.yml with ops/prometheus/alerts.yml as
# its rule file. Changing the targets: `stack.sh down prometheus` then up again.
# shellcheck shell=bash

PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}
PROMETHEUS_START_TIMEOUT=${PROMETHEUS_START_TIMEOUT:-30}
PROMETHEUS_SCRAPE_INTERVAL=${PROMETHEUS_SCRAPE_INTERVAL:-5s}
PROMETHEUS_TARGETS=${PROMETHEUS_TARGETS:-api=127.0.0.1:8080,consumer=127.0.0.1:8081}

prometheus_port() { echo "$PROMETHEUS_PORT"; }
prometheus_marker() { echo "--storage.tsdb.path=$STACK_DIR/prometheus/data "; }

ensure_prometheus_installed() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "prometheus: prometheus/promtool not found on PATH (install it: sudo apt-get install -y prometheus)"
  command -v apt-get >/dev/null || die "prometheus: prometheus not found and apt-get is not available"
  local t0 log=$LOGS/install-prometheus.log; t0=$(now_us); mkdir -p "$LOGS"
  say "prometheus: installing Debian package prometheus (apt-get)…"
  # --no-install-recommends: the node exporter and friends are not needed
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >>"$log" 2>&1; then
      tail -n 20 "$log" >&2; die "prometheus: apt-get install prometheus failed; full log: $log"
    fi
  fi
  command -v prometheus >/dev/null || die "prometheus: still not on PATH after apt-get install"
  say "prometheus: installed $(prometheus_version) ($(since "$t0")); the system service is not used"
}

prometheus_version() { prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p' | head -n1; }

# job=host:port,... -> scrape_configs YAML
prometheus_config() {
  local rules=$ROOT/ops/prometheus/alerts.yml pair job target
  printf 'global:\n  scrape_interval: %s\n  evaluation_interval: %s\n' "$PROMETHEUS_SCRAPE_INTERVAL" "$PROMETHEUS_SCRAPE_INTERVAL"
  [[ -f $rules ]] && printf 'rule_files:\n  - %s\n' "$rules"
  printf 'scrape_configs:\n'
  IFS=',' read -ra pairs <<<"$PROMETHEUS_TARGETS"
  for pair in "${pairs[@]}"; do
    [[ -z $pair ]] && continue
    [[ $pair == *=*:* ]] || die "prometheus: PROMETHEUS_TARGETS entry '$pair' is not job=host:port"
    job=${pair%%=*}; target=${pair#*=}
    printf '  - job_name: %s\n    static_configs:\n      - targets: ["%s"]\n' "$job" "$target"
  done
}

prometheus_preflight() {
  our_pid prometheus >/dev/null || require_port_free prometheus "$PROMETHEUS_PORT" PROMETHEUS_PORT
  ensure_prometheus_installed
}

prometheus_ready() { [[ $(http_status "http://127.0.0.1:$PROMETHEUS_PORT/-/ready") == 200 ]]; }

start_prometheus() {
  local t0 pid dir=$STACK_DIR/prometheus; t0=$(now_us)
  if pid=$(our_pid prometheus); then
    prometheus_ready || die "prometheus: pid $pid is running but 127.0.0.1:$PROMETHEUS_PORT is not ready"
    say "prometheus: already running (pid $pid) on 127.0.0.1:$PROMETHEUS_PORT"; return 0
  fi
  mkdir -p "$dir/data"; rm -f "$(pidfile prometheus)"; rotate_log prometheus
  prometheus_config >"$dir/prometheus.yml"
  promtool check config "$dir/prometheus.yml" >>"$(logfile prometheus)" 2>&1 \
    || { show_log_tail prometheus; die "prometheus: generated config $dir/prometheus.yml is invalid"; }
  # --web.enable-lifecycle: tests reload a changed config with POST /-/reload
  setsid prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle \
    --storage.tsdb.retention.time=2d </dev/null >>"$(logfile prometheus)" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$(pidfile prometheus)"
  await_ready prometheus "$pid" "$PROMETHEUS_START_TIMEOUT" prometheus_ready "not ready on 127.0.0.1:$PROMETHEUS_PORT"
  prometheus_version >"$RUN/prometheus.version"
  say "prometheus: up on 127.0.0.1:$PROMETHEUS_PORT (pid $pid, $(since "$t0")); config $dir/prometheus.yml"
}

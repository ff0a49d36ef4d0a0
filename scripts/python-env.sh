#!/usr/bin/env bash
# A Python virtualenv for the Python examples and their tests (examples/python/), with the pinned
# packages of examples/python/requirements.txt installed from PyPI.
#
#   bash scripts/python-env.sh     -> prints the virtualenv's python path as its last line
#
# Idempotent: a stamp (requirements hash + interpreter version) skips the work when nothing
# changed; a broken or outdated virtualenv is made again. Used by test/integration/examples.test.ts
# and .ci/run. Settings: PYTHON (interpreter, default python3), CDP_VENV (default .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
venv=${CDP_VENV:-$root/.venv}
req=$root/examples/python/requirements.txt
py=${PYTHON:-python3}
log() { echo "python-env: $*" >&2; }

if ! command -v "$py" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing python3 (Debian)"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  else
    log "no $py on PATH: install Python 3.8+ (Debian: apt-get install python3 python3-venv)"; exit 1
  fi
fi
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' \
  || { log "$py is $("$py" --version 2>&1); Python 3.8 or newer is needed"; exit 1; }

want="$(sha256sum "$req" | cut -d' ' -f1) $("$py" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.cdp-stamp" 2>/dev/null)" = "$want" ] \
  && "$venv/bin/python" -c 'import confluent_kafka, fastavro, clickhouse_connect' 2>/dev/null; then
  echo "$venv/bin/python"; exit 0
fi

# Debian and Ubuntu ship venv (ensurepip) apart from python3: without it `python3 -m venv` fails
probe=$(mktemp -d)
if ! "$py" -m venv "$probe/v" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    log "python3 -m venv does not work: installing Debian's python3-venv"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$ver-venv" >&2 \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  else
    rm -rf "$probe"; log "'$py -m venv' does not work: install python3-venv (Debian/Ubuntu) or use another PYTHON"; exit 1
  fi
fi
rm -rf "$probe"

log "making $venv"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
"$venv/bin/python" -c 'import confluent_kafka, fastavro; print("python-env: confluent-kafka", confluent_kafka.__version__, "with librdkafka", confluent_kafka.libversion()[0])' >&2
"$venv/bin/python" -c 'import clickhouse_connect; print("python-env: clickhouse-connect", clickhouse_connect.__version__)' >&2
echo "$want" > "$venv/.cdp-stamp"
echo "$venv/bin/python"

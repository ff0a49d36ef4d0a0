#!/usr/bin/env bash
# The project's test command (`npm test`, also what .ci/run calls):
#   1. start the local stack if it is not running (installs what is missing: Kafka jars, Apicurio, Redis)
#   2. type check (tsc --noEmit, strict) and lint (floating promises, .only, process.env)
#   3. run every tap test (unit and integration) against the real services, then test/serial/ alone
# Extra arguments go to tap, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d node_modules ] || { echo "test: node_modules missing; run npm ci first" >&2; exit 1; }
echo "== stack"
bash tools/stack/stack.sh up
echo "== typecheck"
npx tsc --noEmit -p .
echo "== lint"
npx eslint .
if [ $# -gt 0 ]; then
  npx tap "$@"
  exit
fi
echo "== tests (parallel)"
rc=0
npx tap || rc=$?
# these stop or restart shared services (the Kafka broker), so they run alone, after the rest
echo "== tests (serial)"
npx tap --jobs=1 test/serial/*.test.ts || rc=$?
exit $rc

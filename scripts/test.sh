#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs and starts what the tests need
# where it is missing (Docker engine and test image, Elasticsearch, chromium), builds, and
# runs every test. Tests that need Docker, Elasticsearch or chromium fail, never
# skip, when it is not there.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/docker.sh ensure
bash scripts/elasticsearch.sh ensure
bash scripts/chromium.sh ensure
# The Fluent Bit the tests run (test/tools/fluent-bit) needs Debian's libyaml.
fluent_bit=${FLUENT_BIT:-test/tools/fluent-bit/fluent-bit}
if ldd "$fluent_bit" | grep -q 'libyaml.*not found'; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libyaml-0-2 >/dev/null
fi
npm run build --silent
npm run typecheck --silent

report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
exit $status

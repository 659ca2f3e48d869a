/**
 * `npm run bench` (built to dist/bench/run.js). Prints each figure beside its raw baseline from the
 * same run, then a summary table. Flags: `--json` prints the results as JSON on stdout (progress goes
 * to stderr; use `npm run -s bench -- --json` to keep npm's banner off stdout); `--only E1,E3` runs a
 * subset (e.g. to profile one figure: `node --cpu-prof dist/bench/run.js --only E1`).
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { collectGarbage } from './common.ts';
import { calibrateCountPrimes } from './cpu-work.ts';
import { benchD1, benchD2 } from './d-durable.ts';
import { benchE1 } from './e1-inline-steps.ts';
import { benchE2 } from './e2-pool-dispatch.ts';
import { benchE3 } from './e3-parallel-cpu.ts';
import { benchE4 } from './e4-event-loop.ts';
import { benchG } from './g-grpc.ts';
import { detail, header, machine, tableRows, type FigureResult } from './report.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, only: { type: 'string' } } });
const only = new Set((values.only ?? 'E1,E2,E3,E4,D1,D2,G1,G2').toUpperCase().split(','));
const json = values.json === true;
// With --json, stdout carries only the JSON document.
const say = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

const started = performance.now();
const host = machine();
say(header(host));

const results: FigureResult[] = [];
const report = (result: FigureResult) => {
  results.push(result);
  say(`\n${detail(result)}\n`);
  // Each figure starts on a collected heap: garbage an earlier figure left must not be collected
  // (on helper threads that share the two cores) during the next one's timings.
  collectGarbage();
};

if (only.has('E1')) report(await benchE1(11, 2, say));
if (only.has('E2')) report(await benchE2(11, 2, say));
if (only.has('E3') || only.has('E4')) {
  const cpu = calibrateCountPrimes(50);
  say(`\ncalibrated count_primes: limit ${cpu.limit} ≈ ${cpu.ms.toFixed(1)} ms per call on the main thread`);
  if (only.has('E3')) report(await benchE3(15, 2, cpu.limit, cpu.ms, say));
  if (only.has('E4')) report(await benchE4(7, 1, cpu.limit, say));
}
if (only.has('D1')) report(await benchD1(11, 2, say));
if (only.has('D2')) report(await benchD2(9, 2, say));
if (only.has('G1') || only.has('G2')) for (const result of await benchG(7, 1, say)) if (only.has(result.id)) report(result);

const seconds = (performance.now() - started) / 1000;
const loadAtEnd = loadavg()[0]!;
if (json) {
  process.stdout.write(`${JSON.stringify({ machine: host, loadAverage1mAtEnd: loadAtEnd, durationSeconds: seconds, results }, null, 2)}\n`);
} else {
  console.table(tableRows(results));
  say(`total ${seconds.toFixed(0)} s · load avg (1 min) at end ${loadAtEnd.toFixed(2)}`);
}

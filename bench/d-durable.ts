/**
 * D1: a durable sequential 10-step workflow (inline no-op tools, SQLite store, synchronous=FULL): µs per
 * step beside one raw FULL commit of a 1 KB row. D2: durable steps per second with 64 runs in flight,
 * beside the rows/s a raw 64-row FULL group commit allows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRunStore, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type Workflow } from '../src/index.ts';
import { expectCompleted, silentLogger, timeMs, withConcurrency, type Progress } from './common.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { sqlAlone, storeAlone, type Layer } from './d1-layers.ts';
import { openRawSqlite } from './sqlite-baseline.ts';
import { fmt, pairedRatios, summarize } from './stats.ts';

const steps = 10;

function durableSetup() {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-bench-durable-'));
  const store = SqliteRunStore.open({ path: join(dir, 'runs.db') });
  const engine = new WorkflowEngine({ tools: [new Tool({ name: 'noop', execute: () => undefined })], store, logger: silentLogger() });
  const builder = new WorkflowBuilder('durable-bench');
  for (let i = 0; i < steps; i++) builder.addStep(new ToolStep(`s${i}`, 'noop'));
  const workflow: Workflow = builder.build();
  const ctx = new WorkflowContext({ workflowId: 'bench-d' });
  return {
    run: async () => expectCompleted(await engine.executeWorkflow(workflow, ctx)),
    async close() {
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function benchD1(rounds: number, warmup: number, progress: Progress): Promise<FigureResult> {
  const runsPerRound = 40;
  const durable = durableSetup();
  const layers: [string, Layer][] = [
    ['the store alone (the same events and commits, no engine)', storeAlone(steps)],
    ["its SQL alone (the same rows, none of the store's code)", sqlAlone(steps)],
  ];
  const layerRatios = layers.map((): number[] => []);
  const raw = openRawSqlite();
  const stepUs: number[] = [];
  const commitUs: number[] = [];
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      // Interleaved run by run with as many raw commits, so both sides see the same moments of this
      // VM's disk (whose fsync time swings for tens of milliseconds at a time).
      let engineMs = 0;
      let commitTotalUs = 0;
      for (let i = 0; i < runsPerRound; i++) {
        engineMs += await timeMs(() => durable.run());
        commitTotalUs += raw.commitUs(steps) * steps;
      }
      const commit = commitTotalUs / (runsPerRound * steps);
      if (round < warmup) continue;
      stepUs.push((engineMs * 1000) / (runsPerRound * steps));
      commitUs.push(commit);
      progress(`  D1 round ${round - warmup + 1}/${rounds}: ${fmt(stepUs.at(-1)!)} µs/step, raw FULL commit ${fmt(commit)} µs`);
    }
    // The layers in rounds of their own: interleaved with the engine's runs they slowed it down (its code
    // no longer stayed in the CPU's caches between commits), which would change the figure they explain.
    for (const [at, [, layer]] of layers.entries()) {
      for (let round = 0; round < warmup + rounds; round++) {
        let layerMs = 0;
        let layerCommitUs = 0;
        for (let i = 0; i < runsPerRound; i++) {
          layer.prepare();
          layerMs += await timeMs(() => layer.run());
          layerCommitUs += raw.commitUs(steps) * steps;
        }
        if (round >= warmup) layerRatios[at]!.push((layerMs * 1000) / layerCommitUs);
      }
    }
  } finally {
    await durable.close();
    for (const [, layer] of layers) await layer.close();
    raw.close();
  }
  const figure = summarize(stepUs);
  const ratio = summarize(pairedRatios(stepUs, commitUs));
  const target: Target = { on: 'ratio', op: '<=', value: 1.5, text: '≤ 1.5× one FULL commit' };
  const layerNotes = layers.map(([label], at) => {
    const s = summarize(layerRatios[at]!);
    return `${label}, against its own interleaved raw commits: ${fmt(s.median)}× (${fmt(s.min)}–${fmt(s.max)})`;
  });
  return {
    id: 'D1',
    title: `durable sequential ${steps}-step workflow (SQLite, WAL, synchronous=FULL), ${runsPerRound} runs back to back per round`,
    figure: { label: 'durable step', unit: 'µs/step', summary: figure },
    baseline: { label: 'raw SQLite FULL commit of a 1 KB row, own transaction', unit: 'µs/commit', summary: summarize(commitUs) },
    ratio: { label: 'durable step / raw commit', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: ['one commit per step: the run start commits with the first step, the run end with the last step', ...layerNotes],
  };
}

export async function benchD2(rounds: number, warmup: number, progress: Progress): Promise<FigureResult> {
  const inFlight = 64;
  const runsPerRound = 320;
  const durable = durableSetup();
  const raw = openRawSqlite();
  const stepsPerSecond: number[] = [];
  const rawRowsPerSecond: number[] = [];
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      const ms = await timeMs(() => withConcurrency(runsPerRound, inFlight, durable.run));
      const perRow = raw.groupCommitUsPerRow(50, inFlight);
      if (round < warmup) continue;
      stepsPerSecond.push((runsPerRound * steps) / (ms / 1000));
      rawRowsPerSecond.push(1e6 / perRow);
      progress(`  D2 round ${round - warmup + 1}/${rounds}: ${fmt(stepsPerSecond.at(-1)!)} durable steps/s, raw 64-row group commit ${fmt(rawRowsPerSecond.at(-1)!)} rows/s`);
    }
  } finally {
    await durable.close();
    raw.close();
  }
  const figure = summarize(stepsPerSecond);
  const ratio = summarize(pairedRatios(stepsPerSecond, rawRowsPerSecond));
  const target: Target = { on: 'figure', op: '>=', value: 20_000, text: '≥ 20,000 steps/s' };
  return {
    id: 'D2',
    title: `durable ${steps}-step workflows, ${inFlight} runs in flight, ${runsPerRound} runs per round`,
    figure: { label: 'durable steps', unit: 'steps/s', summary: figure },
    baseline: { label: `raw SQLite FULL group commit, ${inFlight} 1 KB rows per transaction`, unit: 'rows/s', summary: summarize(rawRowsPerSecond) },
    ratio: { label: 'durable steps / raw rows', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: ['DBOS on PostgreSQL: about 1,360 steps/s with 16 in flight on this machine (perf anchors B5)', 'each step stores two events (started, completed) plus its result row'],
  };
}

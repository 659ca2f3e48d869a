/**
 * E2: dispatch throughput to the pool. 1-step workflows of a no-op module tool with 64 runs in flight,
 * against raw Piscina tasks to the same no-op on a pool configured like the engine's. The engine batches
 * fast tools under a backlog (PoolToolExecutor); the same engine with `batching: false` is printed beside
 * it, so the gain from batching and the per-task cost without it are both visible.
 */
import { Piscina } from 'piscina';
import { siblingModule, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine } from '../src/index.ts';
import { expectCompleted, silentLogger, timeMs, withConcurrency, type Progress } from './common.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { fmtSummary, pairedRatios, summarize } from './stats.ts';

const threads = 2;
const inFlight = 64;
const perRound = 4_000;

export async function benchE2(rounds: number, warmup: number, progress: Progress): Promise<FigureResult> {
  const noopUrl = siblingModule(import.meta.url, './noop-worker');
  const engine = new WorkflowEngine({
    tools: [new Tool({ name: 'noop', module: noopUrl })],
    pool: { maxThreads: threads, minThreads: threads },
    logger: silentLogger(),
  });
  const unbatched = new WorkflowEngine({
    tools: [new Tool({ name: 'noop', module: noopUrl })],
    pool: { maxThreads: threads, minThreads: threads, batching: false },
    logger: silentLogger(),
  });
  // The engine's pool options that bear on dispatch: thread counts and one task per thread at a time.
  const raw = new Piscina({ filename: noopUrl.href, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: 1 });
  // The same pool as the engine configures it (atomics 'async'), each task carrying an abort signal as the
  // engine's do, but all 64 handed to Piscina at once: what abortable tasks cost when Piscina queues them.
  // (The engine keeps its own queue and hands Piscina one task per thread; see PoolToolExecutor.)
  const abortable = new Piscina({ filename: noopUrl.href, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: 1, atomics: 'async' });
  const quietSignal = () => ({ aborted: false, addEventListener() {}, removeEventListener() {} });
  const wf = new WorkflowBuilder('e2').addStep(new ToolStep('noop', 'noop')).build();
  // Secondary: 4-step runs, to show how much of the gap is per-run rather than per-step cost.
  const fourSteps = new WorkflowBuilder('e2-four');
  for (let i = 0; i < 4; i++) fourSteps.addStep(new ToolStep(`noop${i}`, 'noop'));
  const wf4 = fourSteps.build();
  const ctx = new WorkflowContext({ workflowId: 'bench-e2' });

  const engineRate: number[] = [];
  const rawRate: number[] = [];
  const fourStepRate: number[] = [];
  const abortableRate: number[] = [];
  const unbatchedRate: number[] = [];
  let batchShare = 0;
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      const runEngine = () => withConcurrency(perRound, inFlight, async () => expectCompleted(await engine.executeWorkflow(wf, ctx)));
      const runRaw = () => withConcurrency(perRound, inFlight, async () => void (await raw.run({})));
      // Alternate which side goes first in each round.
      let engineMs: number;
      let rawMs: number;
      if (round % 2 === 0) {
        engineMs = await timeMs(runEngine);
        rawMs = await timeMs(runRaw);
      } else {
        rawMs = await timeMs(runRaw);
        engineMs = await timeMs(runEngine);
      }
      const fourMs = await timeMs(() => withConcurrency(perRound / 4, inFlight, async () => expectCompleted(await engine.executeWorkflow(wf4, ctx))));
      const abortableMs = await timeMs(() => withConcurrency(perRound, inFlight, async () => void (await abortable.run({}, { signal: quietSignal() }))));
      const unbatchedMs = await timeMs(() => withConcurrency(perRound, inFlight, async () => expectCompleted(await unbatched.executeWorkflow(wf, ctx))));
      if (round < warmup) continue;
      unbatchedRate.push(perRound / (unbatchedMs / 1000));
      abortableRate.push(perRound / (abortableMs / 1000));
      fourStepRate.push(perRound / (fourMs / 1000));
      engineRate.push(perRound / (engineMs / 1000));
      rawRate.push(perRound / (rawMs / 1000));
      progress(`  E2 round ${round - warmup + 1}/${rounds}: engine ${engineRate.at(-1)!.toFixed(0)} steps/s, raw Piscina ${rawRate.at(-1)!.toFixed(0)} tasks/s`);
    }
    const stats = engine.poolStats();
    batchShare = stats === undefined || stats.completed === 0 ? 0 : stats.batchedTasks / stats.completed;
  } finally {
    await Promise.all([engine.close(), unbatched.close(), raw.destroy(), abortable.destroy()]);
  }

  const figure = summarize(engineRate);
  const ratio = summarize(pairedRatios(engineRate, rawRate));
  const target: Target = { on: 'ratio', op: '>=', value: 0.8, text: 'ratio ≥ 0.8' };
  return {
    id: 'E2',
    title: `no-op pool tool, 1-step workflows, ${inFlight} runs in flight, ${threads} threads (min ${threads}), ${perRound} runs per round`,
    figure: { label: 'engine', unit: 'steps/s', summary: figure },
    baseline: { label: `raw Piscina, same pool size, ${inFlight} tasks in flight`, unit: 'tasks/s', summary: summarize(rawRate) },
    ratio: { label: 'engine / raw', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: [
      `the engine sent ${(100 * batchShare).toFixed(0)}% of its tasks in batches of two or more (fast tools, under a backlog); with batching: false: ${fmtSummary(summarize(unbatchedRate), 'steps/s')}; / raw, paired: ${fmtSummary(summarize(pairedRatios(unbatchedRate, rawRate)), '×')}`,
      `per step: engine ${(1e6 / figure.median).toFixed(1)} µs, raw ${(1e6 / summarize(rawRate).median).toFixed(1)} µs of wall time`,
      `4-step runs, ${inFlight} in flight: ${fmtSummary(summarize(fourStepRate), 'steps/s')}; / raw, paired: ${fmtSummary(summarize(pairedRatios(fourStepRate, rawRate)), '×')}`,
      `raw Piscina with the engine's pool options (atomics 'async', a signal per task), queueing all ${inFlight} itself: ${fmtSummary(summarize(abortableRate), 'tasks/s')}; / raw: ${fmtSummary(summarize(pairedRatios(abortableRate, rawRate)), '×')}; engine / it: ${fmtSummary(summarize(pairedRatios(engineRate, abortableRate)), '×')}`,
    ],
  };
}

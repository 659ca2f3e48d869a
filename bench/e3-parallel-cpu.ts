/**
 * E3: does a ParallelStep of two CPU-heavy pool branches use both cores? The same workflow on a
 * 2-thread pool and on a 1-thread pool, timed back to back in each round; speedup = 1-thread / 2-thread.
 * The same two tasks on raw Piscina pools are timed in the same rounds, to tell the machine's limit
 * (other load on the 2 cores) from the engine's.
 */
import { Piscina } from 'piscina';
import { builtinTools, ParallelStep, siblingModule, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type Workflow } from '../src/index.ts';
import { collectGarbage, expectCompleted, silentLogger, timeMs, type Progress } from './common.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { pairedRatios, summarize } from './stats.ts';

// Two executions per timing: one 2-branch workflow is only ~50–100 ms, short against scheduler noise.
const repsPerTiming = 2;

function parallelWorkflow(limit: number): Workflow {
  const par = new ParallelStep('par')
    .addBranch(new ToolStep('a', 'count_primes', { limit }).withOutputKey('a'))
    .addBranch(new ToolStep('b', 'count_primes', { limit }).withOutputKey('b'));
  return new WorkflowBuilder('e3').addStep(par).build();
}

export async function benchE3(rounds: number, warmup: number, limit: number, calibratedMs: number, progress: Progress): Promise<FigureResult> {
  const logger = silentLogger();
  const two = new WorkflowEngine({ tools: builtinTools(), pool: { maxThreads: 2 }, logger });
  const one = new WorkflowEngine({ tools: builtinTools(), pool: { maxThreads: 1 }, logger });
  // The built-in module is a plain default-export function of its args, so Piscina can run it directly.
  const primesUrl = siblingModule(import.meta.url, '../workers/tools/count-primes').href;
  const rawTwo = new Piscina({ filename: primesUrl, minThreads: 2, maxThreads: 2 });
  const rawOne = new Piscina({ filename: primesUrl, minThreads: 1, maxThreads: 1 });
  const wf = parallelWorkflow(limit);
  const ctx = new WorkflowContext({ workflowId: 'bench-e3' });
  const onEngine = (engine: WorkflowEngine) => async () => {
    for (let i = 0; i < repsPerTiming; i++) expectCompleted(await engine.executeWorkflow(wf, ctx));
  };
  const onRaw = (pool: Piscina) => async () => {
    for (let i = 0; i < repsPerTiming; i++) await Promise.all([pool.run({ limit }), pool.run({ limit })]);
  };
  // Each pair times its 2-thread and 1-thread sides back to back, in alternating order.
  const pair = async (a: () => Promise<void>, b: () => Promise<void>, aFirst: boolean): Promise<[number, number]> => {
    if (aFirst) {
      const ta = await timeMs(a);
      return [ta, await timeMs(b)];
    }
    const tb = await timeMs(b);
    return [await timeMs(a), tb];
  };

  const twoMs: number[] = [];
  const oneMs: number[] = [];
  const rawSpeedup: number[] = [];
  const rawTwoMs: number[] = [];
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      // The 2-thread timings need both cores: no main-thread GC (whose helpers take cores) during them.
      collectGarbage();
      const [t2, t1] = await pair(onEngine(two), onEngine(one), round % 2 === 0);
      collectGarbage();
      const [r2, r1] = await pair(onRaw(rawTwo), onRaw(rawOne), round % 2 === 1);
      if (round < warmup) continue;
      twoMs.push(t2 / repsPerTiming);
      oneMs.push(t1 / repsPerTiming);
      rawSpeedup.push(r1 / r2);
      rawTwoMs.push(r2 / repsPerTiming);
      progress(
        `  E3 round ${round - warmup + 1}/${rounds}: engine 2 threads ${twoMs.at(-1)!.toFixed(1)} ms, 1 thread ${oneMs.at(-1)!.toFixed(1)} ms; raw Piscina speedup ${rawSpeedup.at(-1)!.toFixed(2)}`,
      );
    }
  } finally {
    await Promise.all([two.close(), one.close(), rawTwo.destroy(), rawOne.destroy()]);
  }

  const figure = summarize(twoMs);
  const speedups = pairedRatios(oneMs, twoMs);
  const ratio = summarize(speedups);
  const raw = summarize(rawSpeedup);
  const relative = summarize(pairedRatios(speedups, rawSpeedup));
  const target: Target = { on: 'ratio', op: '>=', value: 1.9, text: 'speedup ≥ 1.9 (max 2.0)' };
  return {
    id: 'E3',
    title: `ParallelStep of 2 CPU-heavy branches (count_primes limit ${limit}), 2-thread vs 1-thread pool`,
    figure: { label: 'parallel step on a 2-thread pool', unit: 'ms/run', summary: figure },
    baseline: { label: 'same workflow on a 1-thread pool', unit: 'ms/run', summary: summarize(oneMs) },
    ratio: { label: 'speedup, 1-thread / 2-thread', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: [
      `one branch on the main thread during calibration: ${calibratedMs.toFixed(1)} ms; on the 1-thread pool: ${(summarize(oneMs).median / 2).toFixed(1)} ms`,
      `raw Piscina, same 2 tasks, same rounds: speedup ${raw.median.toFixed(2)} (${raw.min.toFixed(2)}–${raw.max.toFixed(2)}); engine speedup / raw speedup, paired: ${relative.median.toFixed(2)} (${relative.min.toFixed(2)}–${relative.max.toFixed(2)})`,
      `on 2 threads: the engine's parallel step ${figure.median.toFixed(1)} ms, raw Piscina's 2 tasks ${summarize(rawTwoMs).median.toFixed(1)} ms (medians, same rounds)`,
    ],
  };
}

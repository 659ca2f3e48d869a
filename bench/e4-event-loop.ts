/**
 * E4: does the main thread stay responsive while the pool is saturated? Event-loop delay p99 during a
 * window with 32 runs of a ~50 ms CPU tool in flight on 2 threads, against the same window with the
 * main thread idle. Loaded and idle windows alternate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { builtinTools, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine } from '../src/index.ts';
import { expectCompleted, silentLogger, type Progress } from './common.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { pairedRatios, summarize } from './stats.ts';

const threads = 2;
const inFlight = 32;
const windowMs = 2_000;
const resolutionMs = 2;
// Time to let every thread pick up work before the window opens.
const rampMs = 200;

/** p99 and max of the main thread's event-loop delay over the next `windowMs`, in ms. */
async function delayWindow(): Promise<{ p99: number; max: number }> {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  await sleep(windowMs);
  histogram.disable();
  return { p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 };
}

export async function benchE4(rounds: number, warmup: number, limit: number, progress: Progress): Promise<FigureResult> {
  const engine = new WorkflowEngine({ tools: builtinTools(), pool: { maxThreads: threads }, logger: silentLogger() });
  const wf = new WorkflowBuilder('e4').addStep(new ToolStep('work', 'count_primes', { limit })).build();
  const ctx = new WorkflowContext({ workflowId: 'bench-e4' });

  const loaded = async () => {
    let stop = false;
    let completed = 0;
    const lane = async () => {
      while (!stop) {
        expectCompleted(await engine.executeWorkflow(wf, ctx));
        completed++;
      }
    };
    // Observed from the start, so a failing run rejects here rather than as an unhandled rejection.
    const lanes = Promise.all(Array.from({ length: inFlight }, lane));
    await sleep(rampMs);
    const before = completed;
    const delay = await delayWindow();
    const runsPerSecond = (completed - before) / (windowMs / 1000);
    // Drain outside the window: what is measured is the saturated steady state only.
    stop = true;
    await lanes;
    return { ...delay, runsPerSecond };
  };

  const loadedP99: number[] = [];
  const idleP99: number[] = [];
  const loadedMax: number[] = [];
  const throughput: number[] = [];
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      const busy = await loaded();
      const idle = await delayWindow();
      if (round < warmup) continue;
      loadedP99.push(busy.p99);
      loadedMax.push(busy.max);
      throughput.push(busy.runsPerSecond);
      idleP99.push(idle.p99);
      progress(`  E4 round ${round - warmup + 1}/${rounds}: saturated p99 ${busy.p99.toFixed(2)} ms (max ${busy.max.toFixed(1)}, ${busy.runsPerSecond.toFixed(1)} runs/s), idle p99 ${idle.p99.toFixed(2)} ms`);
    }
  } finally {
    await engine.close();
  }

  const figure = summarize(loadedP99);
  const ratio = summarize(pairedRatios(loadedP99, idleP99));
  const target: Target = { on: 'figure', op: '<=', value: 20, text: 'p99 ≤ 20 ms' };
  return {
    id: 'E4',
    title: `main-thread event-loop delay p99 (resolution ${resolutionMs} ms, ${windowMs / 1000} s windows), ${inFlight} runs of count_primes(${limit}) in flight on ${threads} threads`,
    figure: { label: 'pool saturated', unit: 'ms p99', summary: figure },
    baseline: { label: 'main thread idle, same window', unit: 'ms p99', summary: summarize(idleP99) },
    ratio: { label: 'saturated / idle', summary: ratio },
    target,
    verdict: verdictOf(target, figure, ratio),
    notes: [
      `max delay while saturated: ${summarize(loadedMax).median.toFixed(1)} ms median of rounds (${summarize(loadedMax).min.toFixed(1)}–${summarize(loadedMax).max.toFixed(1)})`,
      `throughput while saturated: ${summarize(throughput).median.toFixed(1)} runs/s (shows the pool stayed busy)`,
      `delays are timer intervals, so they include the ${resolutionMs} ms sampling period: an idle loop reads about ${resolutionMs} ms`,
    ],
  };
}

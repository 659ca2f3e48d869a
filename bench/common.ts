/** Helpers shared by the figures: a silent engine logger, timing and progress output. */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { WorkflowLogger, type WorkflowResult } from '../src/index.ts';

export function silentLogger(): WorkflowLogger {
  return new WorkflowLogger({ logger: pino({ level: 'silent' }) });
}

/** Milliseconds `work` took. */
export async function timeMs(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** A benchmark that silently measured failing runs would report fiction: fail loudly instead. */
export function expectCompleted(result: WorkflowResult): void {
  if (result.status !== 'completed') throw new Error(`bench run ${result.runId} ended ${result.status}: ${JSON.stringify(result.error)}`);
}

/** Runs `total` calls of `task`, keeping `inFlight` of them running at once. */
export async function withConcurrency(total: number, inFlight: number, task: () => Promise<void>): Promise<void> {
  let started = 0;
  const lane = async () => {
    while (started < total) {
      started++;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
}

export type Progress = (line: string) => void;

/** A full garbage collection, where node runs with --expose-gc (`npm run bench` does); else nothing. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

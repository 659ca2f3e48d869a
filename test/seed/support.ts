/**
 * Helpers for the seed-example tests: an engine with quiet logging and a two-thread pool, closed after
 * use, and the URLs of the pool fixture tools.
 */
import { RecordingClock, WorkflowEngine, type EngineOptions } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

/** Runs `fn` with an engine (quiet logger, at most 2 pool threads unless `options` says otherwise) and closes it. */
export async function withEngine<T>(options: EngineOptions, fn: (engine: WorkflowEngine) => Promise<T>): Promise<T> {
  const engine = new WorkflowEngine({ logger: quietLogger(), pool: { maxThreads: 2 }, ...options });
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

/** A fixture tool module under test/fixtures/tools, for `new Tool({ module })`. */
export function fixtureModule(name: string): URL {
  return new URL(`../fixtures/tools/${name}.ts`, import.meta.url);
}

/** Step ids of step results (`stepId`) or of step definitions (`id`), in order. */
export function ids(steps: readonly ({ stepId: string } | { id: string })[]): string[] {
  return steps.map((s) => ('stepId' in s ? s.stepId : s.id));
}


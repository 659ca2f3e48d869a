/**
 * Small helpers shared by the integration and worker tests: deferreds for synchronising with running
 * tools, a side-effect ledger, event filters and bounded polling. No engine internals.
 */
import { RecordingClock, type RunEvent, type StepResult, type WorkflowResult } from 'jaf-workflows';

export interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  readonly settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  let settled = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = (value) => {
      settled = true;
      res(value);
    };
    reject = (error) => {
      settled = true;
      rej(error);
    };
  });
  return {
    promise,
    resolve,
    reject,
    get settled() {
      return settled;
    },
  };
}

/** Counts side effects per key: the independent oracle for "ran once". */
export class Ledger {
  readonly #counts = new Map<string, number>();
  readonly entries: string[] = [];
  hit(key: string): number {
    const n = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, n);
    this.entries.push(key);
    return n;
  }
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
}

/** A promise that resolves when `signal` aborts, with its reason. */
export function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

/** Resolves after `ms` with a timer that does not keep the process alive. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Polls `check` until it returns true, failing after `timeoutMs` with `what`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Fails with `what` if `promise` has not settled within `timeoutMs` (instead of hanging the test). */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects a run's events (pass `collector.onEvent` as the execute option). */
export function eventCollector(): { events: RunEvent[]; onEvent: (event: RunEvent) => void } {
  const events: RunEvent[] = [];
  return { events, onEvent: (event) => events.push(event) };
}

export type EventOf<T extends RunEvent['type']> = RunEvent & { readonly type: T };

export function ofType<T extends RunEvent['type']>(events: readonly RunEvent[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}

/** A step result anywhere in the tree, by path. */
export function findStep(result: WorkflowResult, path: string): StepResult {
  const visit = (steps: readonly StepResult[]): StepResult | undefined => {
    for (const step of steps) {
      if (step.path === path) return step;
      const inner = visit(step.children);
      if (inner !== undefined) return inner;
    }
    return undefined;
  };
  const found = visit(result.steps);
  if (found === undefined) {
    const all: string[] = [];
    const list = (steps: readonly StepResult[]) => steps.forEach((s) => (all.push(s.path), list(s.children)));
    list(result.steps);
    throw new Error(`no step result at ${path}; have: ${all.join(', ')}`);
  }
  return found;
}

/** A RecordingClock (sleeps recorded, not waited; jitter fixed, at its max by default). */
export function recordingClock(jitter?: number): RecordingClock {
  return jitter === undefined ? new RecordingClock() : new RecordingClock(jitter);
}

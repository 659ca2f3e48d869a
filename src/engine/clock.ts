/** Time as the engine sees it, injectable so tests can check backoff without waiting for it. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** [0, 1), for retry jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || signal?.aborted) return resolve();
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * A clock for tests: sleeps return at once (yielding to the event loop) and are recorded, and jitter is
 * fixed, so backoff delays can be asserted exactly.
 */
export class RecordingClock implements Clock {
  readonly sleeps: number[] = [];
  constructor(private readonly jitter = 1 - Number.EPSILON) {}
  now(): number {
    return Date.now();
  }
  random(): number {
    return this.jitter;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

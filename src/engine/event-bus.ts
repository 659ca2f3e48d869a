/**
 * Live delivery of committed RunEvents to watchers (the gRPC WatchRun stream, in-process observers).
 * `watchRun` gives a run's events after a seq with no gap and no duplicate: it subscribes first, then
 * replays what the store holds, then tails live events. Each watcher's buffer is bounded: a watcher that
 * falls too far behind is ended with WATCH_TOO_SLOW, and resumes from the last seq it saw.
 */
import type { RunStore } from '../store/run-store.ts';
import type { RunEvent } from './events.ts';

export const WatchErrorCode = {
  /** No such run in the store. */
  RUN_NOT_FOUND: 'RUN_NOT_FOUND',
  /** The watcher fell more than its buffer behind; resume from the last seq received. */
  WATCH_TOO_SLOW: 'WATCH_TOO_SLOW',
} as const;

export type WatchErrorCode = (typeof WatchErrorCode)[keyof typeof WatchErrorCode];

export class WatchError extends Error {
  readonly code: WatchErrorCode;
  readonly retryable: boolean;
  constructor(code: WatchErrorCode, message: string) {
    super(message);
    this.name = 'WatchError';
    this.code = code;
    this.retryable = code === WatchErrorCode.WATCH_TOO_SLOW;
  }
}

type Listener = (event: RunEvent) => void;

/** Fan-out of committed events by run id. Publishing to a run nobody watches costs one map lookup. */
export class RunEventBus {
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #everyRun: Listener | undefined;
  readonly #onObserverError: ((err: unknown) => void) | undefined;

  /** `everyRun` hears every event of every run (metrics, audit); what it throws goes to `onObserverError`. */
  constructor(everyRun?: Listener, onObserverError?: (err: unknown) => void) {
    this.#everyRun = everyRun;
    this.#onObserverError = onObserverError;
  }

  publish(event: RunEvent): void {
    if (this.#everyRun !== undefined) {
      try {
        this.#everyRun(event);
      } catch (err) {
        this.#onObserverError?.(err);
      }
    }
    const listeners = this.#listeners.get(event.runId);
    if (listeners === undefined) return;
    for (const listener of listeners) listener(event);
  }

  subscribe(runId: string, listener: Listener): () => void {
    let listeners = this.#listeners.get(runId);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(runId, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.#listeners.delete(runId);
    };
  }

  /** Watchers of a run, for metrics. */
  watchers(runId: string): number {
    return this.#listeners.get(runId)?.size ?? 0;
  }

  /** Whether anything hears this run's events: an every-run observer or a watcher of the run. */
  watched(runId: string): boolean {
    return this.#everyRun !== undefined || this.#listeners.has(runId);
  }
}

export interface WatchOptions {
  /** Deliver events with seq > afterSeq (0: from the start). */
  readonly afterSeq?: number;
  /** Events a watcher may have waiting before it is ended with WATCH_TOO_SLOW. Default 1024. */
  readonly maxBuffered?: number;
  /** Ends the watch (the iterator returns) at once, even while it waits for the next event. */
  readonly signal?: AbortSignal;
}

function isTerminal(event: RunEvent): boolean {
  return event.type === 'run_completed' || event.type === 'run_failed' || event.type === 'run_cancelled';
}

/** A run's events after `afterSeq`, stored then live, ending after its terminal event. */
export async function* watchRun(store: RunStore, bus: RunEventBus, runId: string, options: WatchOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
  const maxBuffered = options.maxBuffered ?? 1024;
  let lastSeq = options.afterSeq ?? 0;
  const live: RunEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  // Subscribe before reading the store, so that nothing committed in between is missed.
  const unsubscribe = bus.subscribe(runId, (event) => {
    if (overflowed) return;
    if (live.length >= maxBuffered) overflowed = true;
    else live.push(event);
    wake?.();
  });
  const signal = options.signal;
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if ((await store.getRun(runId)) === undefined) throw new WatchError(WatchErrorCode.RUN_NOT_FOUND, `run ${runId} does not exist`);
    for (const event of await store.readEvents(runId, lastSeq)) {
      lastSeq = event.seq;
      yield event;
      if (isTerminal(event)) return;
    }
    for (;;) {
      if (signal?.aborted) return;
      const event = live.shift();
      if (event === undefined) {
        if (overflowed) throw new WatchError(WatchErrorCode.WATCH_TOO_SLOW, `watcher of run ${runId} fell more than ${maxBuffered} events behind; resume after seq ${lastSeq}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (event.seq <= lastSeq) continue; // already replayed from the store
      lastSeq = event.seq;
      yield event;
      if (isTerminal(event)) return;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}

/**
 * When a group-committing store writes what has been appended. By default on the next event-loop turn
 * (or after `maxDelayMs`), so every run that appends in between shares the commit. On request (`soon`),
 * once the current tick's microtasks have run instead: for a lone run nobody watches, whose next events
 * are appended by its own continuations (microtasks), a loop turn only adds latency. At most
 * `maxSoonInARow` such flushes come before a loop turn, so timers and I/O still run. Not for a watched
 * run: chained flushes held back the socket writes of the streams watching it (commit-to-client p99
 * went from about 1 ms to 5 ms, bench G2).
 */

/** End-of-tick flushes before one waits for a loop turn: about a millisecond of a lone run's commits. */
const maxSoonInARow = 16;

/** A flush queued with process.nextTick, which cannot be cleared: a flush that ran first cancels it. */
interface TickFlush {
  cancelled: boolean;
}

export class FlushTimer {
  readonly #flush: () => void;
  readonly #maxDelayMs: number;
  #scheduled: NodeJS.Immediate | NodeJS.Timeout | TickFlush | undefined;
  /** End-of-tick flushes since the last loop turn. */
  #soonInARow = 0;

  /** `flush` writes what is pending; it must call `cancel()` first (so a flush forced early disarms this). */
  constructor(flush: () => void, maxDelayMs: number) {
    this.#flush = flush;
    this.#maxDelayMs = maxDelayMs;
  }

  /** Arms a flush on the next loop turn (or after maxDelayMs), unless one is armed. */
  schedule(): void {
    if (this.#scheduled !== undefined) return;
    const fire = () => {
      // A loop turn went by: the run of end-of-tick flushes starts again.
      this.#soonInARow = 0;
      this.#scheduled = undefined;
      this.#flush();
    };
    this.#scheduled = this.#maxDelayMs > 0 ? setTimeout(fire, this.#maxDelayMs) : setImmediate(fire);
  }

  /** Moves a flush armed for the next loop turn to the end of this tick, if the chain allows one more. */
  soon(): void {
    const scheduled = this.#scheduled;
    if (scheduled === undefined || 'cancelled' in scheduled || this.#maxDelayMs > 0 || this.#soonInARow >= maxSoonInARow) return;
    this.#soonInARow += 1;
    clearImmediate(scheduled as NodeJS.Immediate);
    const tick: TickFlush = { cancelled: false };
    this.#scheduled = tick;
    // Queued from a microtask, the tick runs after every microtask of this turn.
    queueMicrotask(() =>
      process.nextTick(() => {
        if (tick.cancelled) return;
        this.#scheduled = undefined;
        this.#flush();
      }),
    );
  }

  /** Disarms the armed flush, if any. */
  cancel(): void {
    const scheduled = this.#scheduled;
    if (scheduled === undefined) return;
    if ('cancelled' in scheduled) scheduled.cancelled = true;
    else {
      clearTimeout(scheduled as NodeJS.Timeout);
      clearImmediate(scheduled as NodeJS.Immediate);
    }
    this.#scheduled = undefined;
  }
}

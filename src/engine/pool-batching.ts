/**
 * Which module tools are fast enough to share a thread hop with others. A Piscina task costs the main
 * thread about as much as a whole no-op step does (a structured clone and a message each way), so
 * under a backlog the pool sends several fast tasks to a thread as one batch. A tool earns that by
 * finishing quickly `streakToBatch` times in a row; one run timed slow on the thread, or one run killed
 * or crashing its thread, takes it away, so a tool that turns slow holds up at most one batch per thread.
 */
export interface PoolBatchingOptions {
  /** Most tasks in one batch. Default 16. */
  readonly maxTasks?: number;
  /** A tool whose runs take longer than this (ms, measured on the thread) is never batched. Default 1. */
  readonly maxToolMs?: number;
}

export const defaultBatchMaxTasks = 16;
export const defaultBatchMaxToolMs = 1;
/** Fast runs in a row before a tool is batched. */
const streakToBatch = 8;

export class FastToolTracker {
  readonly #streaks = new Map<string, number>();
  readonly #maxToolMs: number;

  constructor(maxToolMs: number) {
    this.#maxToolMs = maxToolMs;
  }

  isFast(moduleUrl: string): boolean {
    return (this.#streaks.get(moduleUrl) ?? 0) >= streakToBatch;
  }

  /** A run's time as the thread measured it: resets the streak if the tool was slow. */
  ran(moduleUrl: string, ms: number): void {
    this.#streaks.set(moduleUrl, ms <= this.#maxToolMs ? (this.#streaks.get(moduleUrl) ?? 0) + 1 : 0);
  }

  /**
   * A single task's round trip, seen from the main thread: it can only count in the tool's favour,
   * since a busy main thread makes any round trip look slow.
   */
  roundTrip(moduleUrl: string, ms: number): void {
    if (ms <= this.#maxToolMs) this.#streaks.set(moduleUrl, (this.#streaks.get(moduleUrl) ?? 0) + 1);
  }

  /** The tool's run killed or crashed its thread. */
  faulted(moduleUrl: string): void {
    this.#streaks.set(moduleUrl, 0);
  }
}

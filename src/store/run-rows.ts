/**
 * The SQLite store's `runs` table is an index over the event log (which workflow, which status, when), so
 * it is written behind the log: a run's row is queued when its run_started commits and written together
 * with other runs' rows in a later batch. A run's start and finish then cost no pages of their own in the
 * commit of its first and last step (they were 4 and 2-3 of about 30 pages a 10-step run wrote). The log
 * stays the truth: rows lost in a crash are rebuilt from it when the file is opened again.
 */
import type { RunStatus } from '../engine/events.ts';

/** Written once this many runs have a queued row. */
export const maxQueuedRunRows = 64;
/** Written once the oldest queued row has waited this long (ms), with the next batch or on its own. */
export const maxRunRowDelayMs = 200;

/** The `runs` row a run should have. */
export interface RunRow {
  readonly num: number;
  readonly runId: string;
  readonly workflowId: string;
  readonly definitionHash: string;
  readonly createdAt: number;
  status: RunStatus;
  finishedAt: number | undefined;
  /** Whether the table holds a row for it already (then only its status and finish time change). */
  readonly stored: boolean;
}

/** What one batch did to runs: applied to the queue only once the batch committed. */
export type RunRowChange =
  | { readonly kind: 'started'; readonly row: RunRow }
  | { readonly kind: 'finished'; readonly num: number; readonly runId: string; readonly status: RunStatus; readonly finishedAt: number };

export class RunRowQueue {
  readonly #rows = new Map<string, RunRow>();
  /** When the oldest queued row was queued (epoch ms); undefined when none is. */
  #since: number | undefined;

  get size(): number {
    return this.#rows.size;
  }

  get(runId: string): RunRow | undefined {
    return this.#rows.get(runId);
  }

  /** Queues a committed batch's changes. */
  apply(changes: readonly RunRowChange[], now: number): void {
    for (const change of changes) {
      switch (change.kind) {
        case 'started':
          this.#rows.set(change.row.runId, change.row);
          break;
        case 'finished': {
          const queued = this.#rows.get(change.runId);
          if (queued !== undefined) {
            queued.status = change.status;
            queued.finishedAt = change.finishedAt;
          } else {
            this.#rows.set(change.runId, {
              num: change.num,
              runId: change.runId,
              workflowId: '',
              definitionHash: '',
              createdAt: 0,
              status: change.status,
              finishedAt: change.finishedAt,
              stored: true,
            });
          }
          break;
        }
        default:
          change satisfies never;
      }
    }
    if (this.#rows.size > 0) this.#since ??= now;
  }

  /** Whether the queue should be written now. */
  due(now: number): boolean {
    return this.#since !== undefined && (this.#rows.size >= maxQueuedRunRows || now - this.#since >= maxRunRowDelayMs);
  }

  /** The queued rows, oldest first (they stay queued until `written`). */
  rows(): RunRow[] {
    return [...this.#rows.values()];
  }

  /** Forgets rows that were written, unless a later change replaced them meanwhile. */
  written(rows: readonly RunRow[]): void {
    for (const row of rows) if (this.#rows.get(row.runId) === row) this.#rows.delete(row.runId);
    if (this.#rows.size === 0) this.#since = undefined;
  }
}

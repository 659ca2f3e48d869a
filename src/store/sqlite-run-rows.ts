/**
 * The SQLite side of the `runs` table written behind the log (run-rows.ts): writing queued rows (with a
 * batch, on their own before queries of the table, or by a timer when no batch comes) and, on open,
 * rebuilding the rows a killed process had queued from the log. Runs the store's statements on its own
 * connection; the store decides when a batch carries rows.
 */
import type Database from 'better-sqlite3';
import type { RunEvent, RunStatus } from '../engine/events.ts';
import { runStatusAfter } from './event-facts.ts';
import { maxRunRowDelayMs, RunRowQueue, type RunRow, type RunRowChange } from './run-rows.ts';
import { isFinished, StoreError, StoreErrorCode } from './run-store.ts';
import { storeError } from './sqlite-errors.ts';

/** The statuses `isFinished` accepts, as an SQL list. */
const finishedStatuses: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];
export const sqlFinishedStatuses = finishedStatuses.map((status) => `'${status}'`).join(', ');

/** A run's first and last events, read from the log by run number. */
export interface LoggedRun {
  first(num: number): RunEvent | undefined;
  last(num: number): RunEvent | undefined;
}

export class SqliteRunRows {
  readonly queue = new RunRowQueue();
  readonly #db: Database.Database;
  readonly #location: string;
  readonly #log: LoggedRun;
  /** Told of each transaction this writes on its own (the store counts its commits). */
  readonly #onCommit: () => void;
  readonly #statements;
  #timer: NodeJS.Timeout | undefined;

  constructor(db: Database.Database, location: string, log: LoggedRun, onCommit: () => void) {
    this.#db = db;
    this.#location = location;
    this.#log = log;
    this.#onCommit = onCommit;
    this.#statements = {
      insertRun: db.prepare('INSERT INTO runs (run_num, run_id, workflow_id, definition_hash, status, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      finishRun: db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE run_num = ?'),
      maxRowNum: db.prepare('SELECT max(run_num) FROM runs').pluck(),
      maxLoggedNum: db.prepare('SELECT max(id) >> 32 FROM run_events').pluck(),
      nextLoggedNum: db.prepare('SELECT id >> 32 FROM run_events WHERE id > ((? << 32) | 4294967295) ORDER BY id LIMIT 1').pluck(),
      runningNums: db.prepare(`SELECT run_num FROM runs WHERE status NOT IN (${sqlFinishedStatuses})`).pluck(),
    };
  }

  /**
   * On open: runs logged past the last row get one (from their first and last events); rows still
   * 'running' whose log ended the run get its status. Returns the number the next run gets.
   */
  rebuild(): number {
    const s = this.#statements;
    this.#db.transaction(() => {
      for (let num = s.nextLoggedNum.get((s.maxRowNum.get() as number | null) ?? 0) as number | undefined; num !== undefined; num = s.nextLoggedNum.get(num) as number | undefined) {
        const first = this.#log.first(num)!;
        const last = this.#log.last(num)!;
        if (first.type !== 'run_started') throw new StoreError(StoreErrorCode.STORE_CONFLICT, `${this.#location}: run number ${num} has no run_started event`);
        const status = runStatusAfter('running', last);
        s.insertRun.run(num, first.runId, first.workflowId, first.definitionHash, status, first.at, isFinished(status) ? last.at : null);
      }
      for (const num of s.runningNums.all() as number[]) {
        const last = this.#log.last(num)!;
        const status = runStatusAfter('running', last);
        if (isFinished(status)) s.finishRun.run(status, last.at, num);
      }
    })();
    return Math.max((s.maxRowNum.get() as number | null) ?? 0, (s.maxLoggedNum.get() as number | null) ?? 0) + 1;
  }

  /** The queued rows a batch committing now should carry: all of them once they are due, else none. */
  due(): RunRow[] {
    return this.queue.due(Date.now()) ? this.queue.rows() : [];
  }

  /** Inside a transaction: stores the rows. */
  write(rows: readonly RunRow[]): void {
    const s = this.#statements;
    for (const row of rows) {
      if (row.stored) s.finishRun.run(row.status, row.finishedAt ?? null, row.num);
      else s.insertRun.run(row.num, row.runId, row.workflowId, row.definitionHash, row.status, row.createdAt, row.finishedAt ?? null);
    }
  }

  /** After a batch committed: the rows it carried are written, its changes queued. */
  committed(rows: readonly RunRow[], changes: readonly RunRowChange[]): void {
    this.queue.written(rows);
    this.queue.apply(changes, Date.now());
    this.#arm();
  }

  /** Writes every queued row now, in a transaction of its own (before reads that query the table). */
  settle(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.queue.size === 0) return;
    const rows = this.queue.rows();
    try {
      this.#db.transaction(() => this.write(rows))();
    } catch (err) {
      throw err instanceof StoreError ? err : storeError(err, this.#location, 'store run rows');
    }
    this.#onCommit();
    this.queue.written(rows);
  }

  /** Before the connection closes: what cannot be written now is rebuilt from the log on the next open. */
  close(): void {
    try {
      this.settle();
    } catch {
      // Rebuilt from the log when the file is opened again.
    }
    clearTimeout(this.#timer);
  }

  /** Rows still queued after a commit are written within maxRunRowDelayMs even if no batch comes. */
  #arm(): void {
    if (this.queue.size === 0 || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      try {
        this.settle();
      } catch {
        // Stays queued: the next batch or read tries again, and the log holds what the rows say.
        this.#arm();
      }
    }, maxRunRowDelayMs);
    this.#timer.unref();
  }
}

/**
 * The default RunStore: one SQLite file (better-sqlite3), WAL, one writer on the main thread.
 *
 * Group commit: appends from every run are queued and written in one transaction per event-loop turn
 * (or sooner when `maxBatchEvents` are waiting), so 64 runs finishing steps together pay for one fsync,
 * not 64; a lone run nobody watches (commitSoon) is written at the end of the tick (FlushTimer). An
 * append resolves only after its transaction committed. The `runs` table is written behind the log
 * (run-rows.ts) and rebuilt from it on open.
 *
 * Durability (`synchronous`): FULL (default) fsyncs every commit: a committed step survives a process
 * crash and a power loss (if the disk honours fsync). NORMAL fsyncs only at WAL checkpoints: a process
 * crash loses nothing, a power loss may lose the last commits.
 */
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { RunEvent, RunStatus } from '../engine/events.ts';
import { finalResultPath, runStatusAfter } from './event-facts.ts';
import { FlushTimer } from './flush-timer.ts';
import type { RunRow as QueuedRunRow, RunRowChange } from './run-rows.ts';
import { isFinished, StoreError, StoreErrorCode, type DefinitionKind, type DefinitionRecord, type PublishedWorkflow, type RunQuery, type RunRecord, type RunRequestRecord, type RunStore } from './run-store.ts';
import { SqliteRunRows, sqlFinishedStatuses } from './sqlite-run-rows.ts';
import { migrate } from './sqlite-schema.ts';
import { storeError } from './sqlite-errors.ts';

/** Where the coordinator keeps its runs unless told otherwise. */
export const defaultDatabasePath = './data/jaf-workflows.db';

export interface SqliteStoreOptions {
  /** The database file; its directory is created if missing. Default `./data/jaf-workflows.db`. */
  readonly path?: string;
  /** FULL (default) or NORMAL; see the module comment for what survives what. */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Flush once this many events are waiting, without waiting for the end of the turn. Default 2048. */
  readonly maxBatchEvents?: number;
  /** Extra time to gather a batch, in ms. Default 0: flush at the end of the current event-loop turn. */
  readonly maxDelayMs?: number;
  /** How long to wait for another process's lock at start-up before failing. Default 2000 ms. */
  readonly busyTimeoutMs?: number;
  /** Cap on the database size; writes beyond it fail like a full disk. Default: none. */
  readonly maxSizeBytes?: number;
}

interface PendingAppend {
  readonly events: readonly RunEvent[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

interface StoredRunRow {
  run_num: number;
  run_id: string;
  workflow_id: string;
  definition_hash: string;
  status: string;
  created_at: number;
  finished_at: number | null;
  last_seq: number | null;
}

/**
 * An event's rowid is (run number << 32) | seq (schema version 3), so a run's seqs must fit in 32 bits.
 * Bitwise operators keep the arithmetic in SQLite's 64-bit integers (a JS number would lose precision).
 */
export const maxEventSeq = 0xffff_ffff;
/** The high half of a signed 64-bit rowid: how many runs a file can number. */
const maxRunNum = 0x7fff_ffff;
const firstEventId = '(? << 32)';
const lastEventId = '((? << 32) | 4294967295)';
/** The last stored seq of the run in the `runs` row at hand (NULL when it has no events). */
const lastSeqOfRun =
  '(SELECT id & 4294967295 FROM run_events WHERE id BETWEEN (runs.run_num << 32) AND ((runs.run_num << 32) | 4294967295) ORDER BY id DESC LIMIT 1)';
/** A run row with its last seq, which the log (not the row) holds. */
const runColumns = `runs.*, ${lastSeqOfRun} AS last_seq`;


/** Most event rows one INSERT statement stores. */
const eventsPerInsert = 8;

/** A run this process writes: its number (the high half of its events' ids) and last stored seq. */
interface OpenRun {
  readonly num: number;
  last: number;
}

/** What a batch's transaction did, applied to the store's state only once it committed. */
interface BatchWritten {
  /** The runs the batch appended to, with their new last seq. */
  readonly touched: ReadonlyMap<string, OpenRun>;
  /** Runs started and finished, for their `runs` rows (a finished run is no longer open). */
  readonly changes: readonly RunRowChange[];
}


export class SqliteRunStore implements RunStore {
  readonly location: string;
  readonly #db: Database.Database;
  readonly #maxBatchEvents: number;
  readonly #statements;
  readonly #writeBatch: (batch: readonly PendingAppend[], rows: readonly QueuedRunRow[]) => BatchWritten;
  #pending: PendingAppend[] = [];
  #pendingEvents = 0;
  readonly #timer: FlushTimer;
  /** Runs this process writes, with their last stored seq: checked before each batch so a gap is never stored. */
  readonly #open = new Map<string, OpenRun>();
  /** Runs whose events failed to store: later appends are refused until recovery reloads them. */
  readonly #broken = new Set<string>();
  #closed = false;
  #commits = 0;
  /** `runs` rows not written yet (their runs' events are): see run-rows.ts. */
  readonly #runRows: SqliteRunRows;
  /** The number the next run gets; numbers are handed out here, not by SQLite, since rows come later. */
  #nextRunNum: number;

  private constructor(location: string, db: Database.Database, options: SqliteStoreOptions) {
    this.location = location;
    this.#db = db;
    this.#maxBatchEvents = options.maxBatchEvents ?? 2048;
    this.#timer = new FlushTimer(() => this.#flush(), options.maxDelayMs ?? 0);
    this.#statements = {
      /** insertEvents[n - 1] stores n events: one statement per few rows costs less than one per row. */
      insertEvents: Array.from({ length: eventsPerInsert }, (_, i) =>
        db.prepare(`INSERT INTO run_events (id, body) VALUES ${Array.from({ length: i + 1 }, () => '((? << 32) | ?, ?)').join(', ')}`),
      ),
      insertResult: db.prepare('INSERT INTO step_results (run_num, path, seq) VALUES (?, ?, ?)'),
      openRun: db.prepare(`SELECT run_num, ${lastSeqOfRun} AS last_seq FROM runs WHERE run_id = ?`),
      runNum: db.prepare('SELECT run_num FROM runs WHERE run_id = ?').pluck(),
      getRun: db.prepare(`SELECT ${runColumns} FROM runs WHERE run_id = ?`),
      lastSeqOf: db.prepare(`SELECT id & 4294967295 FROM run_events WHERE id BETWEEN ${firstEventId} AND ${lastEventId} ORDER BY id DESC LIMIT 1`).pluck(),
      readEvents: db.prepare(`SELECT body FROM run_events WHERE id > (${firstEventId} | ?) AND id <= ${lastEventId} ORDER BY id`).pluck(),
      firstEvent: db.prepare(`SELECT body FROM run_events WHERE id BETWEEN ${firstEventId} AND ${lastEventId} ORDER BY id LIMIT 1`).pluck(),
      lastEvent: db.prepare(`SELECT body FROM run_events WHERE id BETWEEN ${firstEventId} AND ${lastEventId} ORDER BY id DESC LIMIT 1`).pluck(),
      deleteEvents: db.prepare(`DELETE FROM run_events WHERE id BETWEEN ${firstEventId} AND ${lastEventId}`),
      deleteResults: db.prepare('DELETE FROM step_results WHERE run_num = ?'),
      deleteRequestsOf: db.prepare('DELETE FROM run_requests WHERE run_id = ?'),
      deleteRun: db.prepare('DELETE FROM runs WHERE run_num = ?'),
      // Through runs_by_status: a run finishes after it starts, so created_at bounds the range to read. (A
      // run whose clock went backwards between the two is pruned by a later call.)
      finishedBefore: db.prepare(
        `SELECT run_num, run_id FROM runs WHERE status IN (${sqlFinishedStatuses}) AND created_at < ? AND finished_at < ?`,
      ),
      unfinished: db.prepare(`SELECT ${runColumns} FROM runs WHERE status NOT IN (${sqlFinishedStatuses}) ORDER BY created_at, run_id`),
      putDefinition: db.prepare('INSERT OR IGNORE INTO definitions (workflow_id, hash, document, kind, created_at) VALUES (?, ?, ?, ?, ?)'),
      publishWorkflow: db.prepare(
        'INSERT INTO published_workflows (workflow_id, definition_hash, published_at) SELECT workflow_id, hash, ? FROM definitions WHERE workflow_id = ? AND hash = ? ' +
          'ON CONFLICT (workflow_id) DO UPDATE SET definition_hash = excluded.definition_hash, published_at = excluded.published_at',
      ),
      getPublished: db.prepare('SELECT * FROM published_workflows WHERE workflow_id = ?'),
      listPublished: db.prepare('SELECT * FROM published_workflows WHERE workflow_id > ? ORDER BY workflow_id LIMIT ?'),
      claimRequest: db.prepare('INSERT INTO run_requests (request_id, fingerprint, run_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING'),
      getRequest: db.prepare('SELECT * FROM run_requests WHERE request_id = ?'),
      releaseRequest: db.prepare('DELETE FROM run_requests WHERE request_id = ? AND run_id = ?'),
      getDefinition: db.prepare('SELECT * FROM definitions WHERE workflow_id = ? AND hash = ?'),
    };
    this.#runRows = new SqliteRunRows(db, location, { first: (num) => this.#firstEvent(num), last: (num) => this.#lastEvent(num) }, () => {
      this.#commits += 1;
    });
    this.#writeBatch = db.transaction((batch: readonly PendingAppend[], rows: readonly QueuedRunRow[]) => {
      this.#runRows.write(rows);
      return this.#write(batch);
    });
    this.#nextRunNum = this.#runRows.rebuild();
  }

  /** Opens (creating if needed) and migrates the database. Fails with a StoreError naming the file. */
  static open(options: SqliteStoreOptions = {}): SqliteRunStore {
    const location = resolve(options.path ?? defaultDatabasePath);
    try {
      mkdirSync(dirname(location), { recursive: true });
    } catch (err) {
      throw new StoreError(StoreErrorCode.STORE_OPEN_FAILED, `cannot create the directory of ${location}: ${(err as Error).message}`, { cause: err });
    }
    // SQLite would open a file it cannot write read-only and fail later with a vague I/O error.
    for (const [path, what] of [
      [location, 'the database file'],
      [dirname(location), 'its directory (the WAL lives beside it)'],
    ] as const) {
      if (!existsSync(path)) continue;
      try {
        accessSync(path, constants.W_OK);
      } catch (err) {
        throw new StoreError(StoreErrorCode.STORE_READ_ONLY, `${location} is read-only: ${what} is not writable (${(err as NodeJS.ErrnoException).code})`, { cause: err });
      }
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(location, { timeout: options.busyTimeoutMs ?? 2000 });
      // One coordinator per file: the first write takes an exclusive lock that is held until close.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
      db.pragma('foreign_keys = OFF');
      if (options.maxSizeBytes !== undefined) {
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxSizeBytes / pageSize))}`);
      }
      migrate(db, location);
      return new SqliteRunStore(location, db, options);
    } catch (err) {
      db?.close();
      throw err instanceof StoreError ? err : storeError(err, location, 'open');
    }
  }

  async putDefinition(definition: DefinitionRecord): Promise<void> {
    this.#run('store a definition', () =>
      this.#statements.putDefinition.run(definition.workflowId, definition.hash, definition.document, definition.kind, definition.createdAt),
    );
  }

  async getDefinition(workflowId: string, hash: string): Promise<DefinitionRecord | undefined> {
    const row = this.#statements.getDefinition.get(workflowId, hash) as
      | { workflow_id: string; hash: string; document: string; kind: DefinitionKind; created_at: number }
      | undefined;
    return row === undefined ? undefined : { workflowId: row.workflow_id, hash: row.hash, document: row.document, kind: row.kind, createdAt: row.created_at };
  }

  async publishWorkflow(published: PublishedWorkflow): Promise<void> {
    const changes = this.#run('publish a workflow', () => this.#statements.publishWorkflow.run(published.publishedAt, published.workflowId, published.definitionHash).changes);
    if (changes === 0) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `workflow ${published.workflowId} version ${published.definitionHash} is not stored`);
  }

  async getPublishedWorkflow(workflowId: string): Promise<PublishedWorkflow | undefined> {
    const row = this.#statements.getPublished.get(workflowId) as PublishedRow | undefined;
    return row === undefined ? undefined : toPublished(row);
  }

  async listPublishedWorkflows(query: { readonly after?: string; readonly limit: number }): Promise<PublishedWorkflow[]> {
    return (this.#statements.listPublished.all(query.after ?? '', query.limit) as PublishedRow[]).map(toPublished);
  }

  async claimRunRequest(request: RunRequestRecord): Promise<RunRequestRecord> {
    const s = this.#statements;
    this.#run('store a request_id', () => s.claimRequest.run(request.requestId, request.fingerprint, request.runId, request.createdAt));
    const row = s.getRequest.get(request.requestId) as { request_id: string; fingerprint: string; run_id: string; created_at: number };
    return { requestId: row.request_id, fingerprint: row.fingerprint, runId: row.run_id, createdAt: row.created_at };
  }

  async releaseRunRequest(requestId: string, runId: string): Promise<void> {
    this.#run('forget a request_id', () => this.#statements.releaseRequest.run(requestId, runId));
  }

  append(events: readonly RunEvent[]): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreError(StoreErrorCode.STORE_WRITE_FAILED, `${this.location} is closed`));
    if (events.length === 0) return Promise.resolve();
    const runId = events[0]!.runId;
    if (this.#broken.has(runId)) {
      return Promise.reject(new StoreError(StoreErrorCode.STORE_RUN_BROKEN, `run ${runId}: earlier events could not be stored in ${this.location}; it resumes on recovery`));
    }
    return new Promise<void>((resolvePromise, reject) => {
      this.#pending.push({ events, resolve: resolvePromise, reject });
      this.#pendingEvents += events.length;
      if (this.#pendingEvents >= this.#maxBatchEvents) this.#flush();
      else this.#timer.schedule();
    });
  }

  /** Transactions committed since the store opened: with the events appended, how well group commit batches. */
  get commits(): number {
    return this.#commits;
  }

  /** Writes everything queued now (also what `close` does). */
  flush(): void {
    this.#flush();
  }

  async readEvents(runId: string, afterSeq = 0): Promise<RunEvent[]> {
    const num = this.#runNum(runId);
    if (num === undefined) return [];
    const after = afterSeq >= maxEventSeq ? maxEventSeq : afterSeq > 0 ? Math.floor(afterSeq) : 0;
    return (this.#statements.readEvents.all(num, after, num) as string[]).map((body) => JSON.parse(body) as RunEvent);
  }

  async readFirstAndLastEvents(runId: string): Promise<{ first: RunEvent; last: RunEvent } | undefined> {
    const num = this.#runNum(runId);
    if (num === undefined) return undefined;
    const first = this.#firstEvent(num);
    const last = this.#lastEvent(num);
    return first === undefined || last === undefined ? undefined : { first, last };
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const queued = this.#runRows.queue.get(runId);
    if (queued !== undefined && !queued.stored) {
      const lastSeq = this.#statements.lastSeqOf.get(queued.num, queued.num) as number | null | undefined;
      return toRecord({ ...toStoredRow(queued), last_seq: lastSeq ?? null });
    }
    const row = this.#statements.getRun.get(runId) as StoredRunRow | undefined;
    if (row === undefined) return undefined;
    return toRecord(queued === undefined ? row : { ...row, status: queued.status, finished_at: queued.finishedAt ?? null });
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    this.#runRows.settle();
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.workflowId !== undefined) {
      where.push('workflow_id = ?');
      params.push(query.workflowId);
    }
    if (query.status !== undefined) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.before !== undefined) {
      where.push('(created_at < ? OR (created_at = ? AND run_id < ?))');
      params.push(query.before.createdAt, query.before.createdAt, query.before.runId);
    }
    const sql = `SELECT ${runColumns} FROM runs ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY created_at DESC, run_id DESC LIMIT ?`;
    return (this.#db.prepare(sql).all(...params, query.limit) as StoredRunRow[]).map(toRecord);
  }

  async unfinishedRuns(): Promise<RunRecord[]> {
    this.#runRows.settle();
    return (this.#statements.unfinished.all() as StoredRunRow[]).map(toRecord);
  }

  async pruneFinished(finishedBefore: number): Promise<number> {
    this.#runRows.settle();
    return this.#run('prune finished runs', () =>
      this.#db.transaction(() => {
        const s = this.#statements;
        const doomed = s.finishedBefore.all(finishedBefore, finishedBefore) as { run_num: number; run_id: string }[];
        // A run's events are one id range: deleting range by range uses the primary key, a subquery would scan.
        for (const { run_num: num, run_id: runId } of doomed) {
          s.deleteEvents.run(num, num);
          s.deleteResults.run(num);
          s.deleteRequestsOf.run(runId);
          s.deleteRun.run(num);
        }
        return doomed.length;
      })(),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#runRows.close();
    this.#closed = true;
    this.#db.close();
  }

  /** A lone run nobody watches is about to wait for its appends: write them at the end of this tick. */
  commitSoon(): void {
    // With other runs open, they may yet join the batch on this loop turn.
    if (this.#open.size <= 1) this.#timer.soon();
  }

  #flush(): void {
    this.#timer.cancel();
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    this.#pendingEvents = 0;
    let rows = this.#runRows.due();
    let written: BatchWritten;
    try {
      try {
        written = this.#writeBatch(batch, rows);
      } catch (err) {
        if (rows.length === 0) throw err;
        // Queued run rows must not cost the batch its events: they stay queued (the log holds what they say).
        rows = [];
        written = this.#writeBatch(batch, rows);
      }
    } catch (err) {
      // The transaction rolled back: none of the batch is stored. Its runs are refused from now on,
      // so that no later event of theirs is stored after a gap; recovery reloads them from what is.
      const error = err instanceof StoreError ? err : storeError(err, this.location, 'write');
      for (const pending of batch) {
        const runId = pending.events[0]!.runId;
        this.#broken.add(runId);
        this.#open.delete(runId);
        pending.reject(error);
      }
      return;
    }
    this.#commits += 1;
    for (const [runId, run] of written.touched) this.#open.set(runId, run);
    for (const change of written.changes) if (change.kind === 'finished') this.#open.delete(change.runId);
    this.#runRows.committed(rows, written.changes);
    for (const pending of batch) pending.resolve();
  }

  #firstEvent(num: number): RunEvent | undefined {
    const body = this.#statements.firstEvent.get(num, num) as string | undefined;
    return body === undefined ? undefined : (JSON.parse(body) as RunEvent);
  }

  #lastEvent(num: number): RunEvent | undefined {
    const body = this.#statements.lastEvent.get(num, num) as string | undefined;
    return body === undefined ? undefined : (JSON.parse(body) as RunEvent);
  }

  /** A run's number: from the runs this process writes or queued, else from its row. */
  #runNum(runId: string): number | undefined {
    return this.#open.get(runId)?.num ?? this.#runRows.queue.get(runId)?.num ?? (this.#statements.runNum.get(runId) as number | undefined);
  }

  /** Inside the batch's transaction: events and final results; a run's row only when it starts or finishes. */
  #write(batch: readonly PendingAppend[]): BatchWritten {
    const s = this.#statements;
    const changes: RunRowChange[] = [];
    // Copies, so that a rolled-back batch leaves #open as it was.
    const touched = new Map<string, OpenRun>();
    // (run number, seq, body) triples, stored after the loop a few rows per statement.
    const rows: (number | string)[] = [];
    for (const { events } of batch) {
      for (const event of events) {
        const runId = event.runId;
        let run = touched.get(runId);
        if (event.type === 'run_started') {
          if (run !== undefined || this.#open.has(runId) || this.#runRows.queue.get(runId) !== undefined || s.runNum.get(runId) !== undefined) {
            throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${runId} already exists`);
          }
          const num = this.#nextRunNum;
          if (num > maxRunNum) throw new StoreError(StoreErrorCode.STORE_FULL, `${this.location}: run numbers are used up (limit ${maxRunNum}); start a new database file`);
          // Taken even if this batch rolls back: a gap in the numbers is harmless.
          this.#nextRunNum = num + 1;
          changes.push({
            kind: 'started',
            row: { num, runId, workflowId: event.workflowId, definitionHash: event.definitionHash, createdAt: event.at, status: 'running', finishedAt: undefined, stored: false },
          });
          run = { num, last: 0 };
          touched.set(runId, run);
        } else if (run === undefined) {
          const known = this.#open.get(runId);
          if (known !== undefined) run = { ...known };
          else {
            const row = s.openRun.get(runId) as { run_num: number; last_seq: number | null } | undefined;
            if (row === undefined) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `event seq ${event.seq} for unknown run ${runId}`);
            run = { num: row.run_num, last: row.last_seq ?? 0 };
          }
          touched.set(runId, run);
        }
        if (event.seq !== run.last + 1) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${runId}: event seq ${event.seq} after ${run.last}`);
        if (event.seq > maxEventSeq) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${runId}: event seq ${event.seq} is over the limit of ${maxEventSeq} events per run`);
        rows.push(run.num, event.seq, JSON.stringify(event));
        const path = finalResultPath(event);
        if (path !== undefined) s.insertResult.run(run.num, path, event.seq);
        const status = runStatusAfter('running', event);
        if (isFinished(status)) {
          changes.push({ kind: 'finished', num: run.num, runId, status, finishedAt: event.at });
        }
        run.last = event.seq;
      }
    }
    for (let at = 0; at < rows.length; at += 3 * eventsPerInsert) {
      const chunk = rows.slice(at, at + 3 * eventsPerInsert);
      s.insertEvents[chunk.length / 3 - 1]!.run(chunk);
    }
    return { touched, changes };
  }

  #run<T>(what: string, work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw err instanceof StoreError ? err : storeError(err, this.location, what);
    }
  }
}


interface PublishedRow {
  readonly workflow_id: string;
  readonly definition_hash: string;
  readonly published_at: number;
}

function toPublished(row: PublishedRow): PublishedWorkflow {
  return { workflowId: row.workflow_id, definitionHash: row.definition_hash, publishedAt: row.published_at };
}

function toStoredRow(row: QueuedRunRow): Omit<StoredRunRow, 'last_seq'> {
  return {
    run_num: row.num,
    run_id: row.runId,
    workflow_id: row.workflowId,
    definition_hash: row.definitionHash,
    status: row.status,
    created_at: row.createdAt,
    finished_at: row.finishedAt ?? null,
  };
}

function toRecord(row: StoredRunRow): RunRecord {
  return {
    runId: row.run_id,
    workflowId: row.workflow_id,
    definitionHash: row.definition_hash,
    status: row.status as RunStatus,
    createdAt: row.created_at,
    finishedAt: row.finished_at ?? undefined,
    lastSeq: row.last_seq ?? 0,
  };
}

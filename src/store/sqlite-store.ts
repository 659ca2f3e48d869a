/**
 * The default RunStore: one SQLite file (better-sqlite3), WAL, one writer on the main thread.
 *
 * Group commit: appends from every run are queued and written in one transaction per event-loop turn
 * (or sooner when `maxBatchEvents` are waiting), so 64 runs finishing steps together pay for one fsync,
 * not 64; a lone run nobody watches (commitSoon) is written at the end of the tick (FlushTimer). An
 * append resolves only after its transaction committed.
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
import { isFinished, StoreError, StoreErrorCode, type DefinitionKind, type DefinitionRecord, type PublishedWorkflow, type RunQuery, type RunRecord, type RunRequestRecord, type RunStore } from './run-store.ts';
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

interface RunRow {
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

/** The statuses `isFinished` accepts, as an SQL list. */
const finishedStatuses: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];
const sqlStatuses = finishedStatuses.map((status) => `'${status}'`).join(', ');

/** Most event rows one INSERT statement stores. */
const eventsPerInsert = 8;

/** A run this process writes: its number (the high half of its events' ids) and last stored seq. */
interface OpenRun {
  readonly num: number;
  last: number;
}


export class SqliteRunStore implements RunStore {
  readonly location: string;
  readonly #db: Database.Database;
  readonly #maxBatchEvents: number;
  readonly #statements;
  readonly #writeBatch: (batch: readonly PendingAppend[]) => void;
  #pending: PendingAppend[] = [];
  #pendingEvents = 0;
  readonly #timer: FlushTimer;
  /** Runs this process writes, with their last stored seq: checked before each batch so a gap is never stored. */
  readonly #open = new Map<string, OpenRun>();
  /** Runs whose events failed to store: later appends are refused until recovery reloads them. */
  readonly #broken = new Set<string>();
  #closed = false;
  #commits = 0;

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
      insertRun: db.prepare('INSERT INTO runs (run_id, workflow_id, definition_hash, status, created_at) VALUES (?, ?, ?, ?, ?)'),
      finishRun: db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE run_num = ?'),
      openRun: db.prepare(`SELECT run_num, ${lastSeqOfRun} AS last_seq FROM runs WHERE run_id = ?`),
      runNum: db.prepare('SELECT run_num FROM runs WHERE run_id = ?').pluck(),
      getRun: db.prepare(`SELECT ${runColumns} FROM runs WHERE run_id = ?`),
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
        `SELECT run_num, run_id FROM runs WHERE status IN (${sqlStatuses}) AND created_at < ? AND finished_at < ?`,
      ),
      unfinished: db.prepare(`SELECT ${runColumns} FROM runs WHERE status NOT IN (${sqlStatuses}) ORDER BY created_at, run_id`),
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
    this.#writeBatch = db.transaction((batch: readonly PendingAppend[]) => this.#write(batch));
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
    const num = this.#statements.runNum.get(runId) as number | undefined;
    if (num === undefined) return [];
    const after = afterSeq >= maxEventSeq ? maxEventSeq : afterSeq > 0 ? Math.floor(afterSeq) : 0;
    return (this.#statements.readEvents.all(num, after, num) as string[]).map((body) => JSON.parse(body) as RunEvent);
  }

  async readFirstAndLastEvents(runId: string): Promise<{ first: RunEvent; last: RunEvent } | undefined> {
    const num = this.#statements.runNum.get(runId) as number | undefined;
    if (num === undefined) return undefined;
    const first = this.#statements.firstEvent.get(num, num) as string | undefined;
    const last = this.#statements.lastEvent.get(num, num) as string | undefined;
    return first === undefined || last === undefined ? undefined : { first: JSON.parse(first) as RunEvent, last: JSON.parse(last) as RunEvent };
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const row = this.#statements.getRun.get(runId) as RunRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
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
    return (this.#db.prepare(sql).all(...params, query.limit) as RunRow[]).map(toRecord);
  }

  async unfinishedRuns(): Promise<RunRecord[]> {
    return (this.#statements.unfinished.all() as RunRow[]).map(toRecord);
  }

  async pruneFinished(finishedBefore: number): Promise<number> {
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
    try {
      this.#writeBatch(batch);
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
    for (const pending of batch) pending.resolve();
  }

  /** Inside the batch's transaction: events and final results; a run's row only when it starts or finishes. */
  #write(batch: readonly PendingAppend[]): void {
    const s = this.#statements;
    // Copies, so that a rolled-back batch leaves #open as it was.
    const touched = new Map<string, OpenRun>();
    const finished = new Set<string>();
    // (run number, seq, body) triples, stored after the loop a few rows per statement.
    const rows: (number | string)[] = [];
    for (const { events } of batch) {
      for (const event of events) {
        const runId = event.runId;
        let run = touched.get(runId);
        if (event.type === 'run_started') {
          const num = Number(s.insertRun.run(runId, event.workflowId, event.definitionHash, 'running', event.at).lastInsertRowid);
          if (num > maxRunNum) throw new StoreError(StoreErrorCode.STORE_FULL, `${this.location}: run numbers are used up (limit ${maxRunNum}); start a new database file`);
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
          s.finishRun.run(status, event.at, run.num);
          finished.add(runId);
        }
        run.last = event.seq;
      }
    }
    for (let at = 0; at < rows.length; at += 3 * eventsPerInsert) {
      const chunk = rows.slice(at, at + 3 * eventsPerInsert);
      s.insertEvents[chunk.length / 3 - 1]!.run(chunk);
    }
    for (const [runId, run] of touched) {
      if (finished.has(runId)) this.#open.delete(runId);
      else this.#open.set(runId, run);
    }
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

function toRecord(row: RunRow): RunRecord {
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

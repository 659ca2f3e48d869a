/**
 * The default RunStore: one SQLite file (better-sqlite3), WAL, one writer on the main thread.
 *
 * Group commit: appends from every run are queued and written in one transaction per event-loop turn
 * (or sooner when `maxBatchEvents` are waiting), so 64 runs finishing steps together pay for one fsync,
 * not 64. An append resolves only after its transaction committed.
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
import { isFinished, StoreError, StoreErrorCode, type DefinitionKind, type DefinitionRecord, type PublishedWorkflow, type RunQuery, type RunRecord, type RunRequestRecord, type RunStore } from './run-store.ts';
import { migrations, schemaVersion } from './sqlite-schema.ts';

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
  run_id: string;
  workflow_id: string;
  definition_hash: string;
  status: string;
  created_at: number;
  finished_at: number | null;
  last_seq: number | null;
}

/** A run row with its last seq, which the log (not the row) holds. */
const runColumns = "runs.*, (SELECT CAST(substr(MAX(key), 2) AS INTEGER) FROM run_log WHERE run_log.run_id = runs.run_id AND key < 'f') AS last_seq";

/** Log keys: events sort by seq, result markers after them (see the schema). */
const eventKey = (seq: number) => `e${String(seq).padStart(12, '0')}`;


export class SqliteRunStore implements RunStore {
  readonly location: string;
  readonly #db: Database.Database;
  readonly #maxBatchEvents: number;
  readonly #maxDelayMs: number;
  readonly #statements;
  readonly #writeBatch: (batch: readonly PendingAppend[]) => void;
  #pending: PendingAppend[] = [];
  #pendingEvents = 0;
  #scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** Last stored seq of runs this process writes: checked before each batch so a gap is never stored. */
  readonly #lastSeq = new Map<string, number>();
  /** Runs whose events failed to store: later appends are refused until recovery reloads them. */
  readonly #broken = new Set<string>();
  #closed = false;

  private constructor(location: string, db: Database.Database, options: SqliteStoreOptions) {
    this.location = location;
    this.#db = db;
    this.#maxBatchEvents = options.maxBatchEvents ?? 2048;
    this.#maxDelayMs = options.maxDelayMs ?? 0;
    this.#statements = {
      insertEvent: db.prepare('INSERT INTO run_log (run_id, key, body) VALUES (?, ?, ?)'),
      insertResult: db.prepare("INSERT INTO run_log (run_id, key, body) VALUES (?, 'r/' || ?, ?)"),
      insertRun: db.prepare('INSERT INTO runs (run_id, workflow_id, definition_hash, status, created_at) VALUES (?, ?, ?, ?, ?)'),
      finishRun: db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?'),
      runExists: db.prepare('SELECT 1 FROM runs WHERE run_id = ?').pluck(),
      lastSeq: db.prepare("SELECT CAST(substr(MAX(key), 2) AS INTEGER) FROM run_log WHERE run_id = ? AND key < 'f'").pluck(),
      getRun: db.prepare(`SELECT ${runColumns} FROM runs WHERE run_id = ?`),
      readEvents: db.prepare("SELECT body FROM run_log WHERE run_id = ? AND key > ? AND key < 'f' ORDER BY key").pluck(),
      unfinished: db.prepare(`SELECT ${runColumns} FROM runs WHERE status NOT IN ('completed', 'failed', 'cancelled') ORDER BY created_at, run_id`),
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
      else this.#schedule();
    });
  }

  /** Writes everything queued now (also what `close` does). */
  flush(): void {
    this.#flush();
  }

  async readEvents(runId: string, afterSeq = 0): Promise<RunEvent[]> {
    return (this.#statements.readEvents.all(runId, eventKey(afterSeq)) as string[]).map((body) => JSON.parse(body) as RunEvent);
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
        const doomed = 'SELECT run_id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?';
        this.#db.prepare(`DELETE FROM run_log WHERE run_id IN (${doomed})`).run(finishedBefore);
        this.#db.prepare(`DELETE FROM run_requests WHERE run_id IN (${doomed})`).run(finishedBefore);
        return this.#db.prepare('DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?').run(finishedBefore).changes;
      })(),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#db.close();
  }

  #schedule(): void {
    if (this.#scheduled !== undefined) return;
    const flush = () => {
      this.#scheduled = undefined;
      this.#flush();
    };
    this.#scheduled = this.#maxDelayMs > 0 ? setTimeout(flush, this.#maxDelayMs) : setImmediate(flush);
  }

  #flush(): void {
    if (this.#scheduled !== undefined) {
      clearTimeout(this.#scheduled as NodeJS.Timeout);
      clearImmediate(this.#scheduled as NodeJS.Immediate);
      this.#scheduled = undefined;
    }
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
        this.#lastSeq.delete(runId);
        pending.reject(error);
      }
      return;
    }
    for (const pending of batch) pending.resolve();
  }

  /** Inside the batch's transaction: events and final results; a run's row only when it starts or finishes. */
  #write(batch: readonly PendingAppend[]): void {
    const s = this.#statements;
    const seqs = new Map<string, number>();
    const finished = new Set<string>();
    for (const { events } of batch) {
      for (const event of events) {
        const runId = event.runId;
        let last = seqs.get(runId) ?? this.#lastSeq.get(runId);
        if (event.type === 'run_started') {
          s.insertRun.run(runId, event.workflowId, event.definitionHash, 'running', event.at);
          last = 0;
        } else if (last === undefined) {
          if (s.runExists.get(runId) === undefined) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `event seq ${event.seq} for unknown run ${runId}`);
          last = (s.lastSeq.get(runId) as number | null) ?? 0;
        }
        if (event.seq !== last + 1) throw new StoreError(StoreErrorCode.STORE_CONFLICT, `run ${runId}: event seq ${event.seq} after ${last}`);
        s.insertEvent.run(runId, eventKey(event.seq), JSON.stringify(event));
        const path = finalResultPath(event);
        if (path !== undefined) s.insertResult.run(runId, path, String(event.seq));
        const status = runStatusAfter('running', event);
        if (isFinished(status)) {
          s.finishRun.run(status, event.at, runId);
          finished.add(runId);
        }
        seqs.set(runId, event.seq);
      }
    }
    for (const [runId, seq] of seqs) {
      if (finished.has(runId)) this.#lastSeq.delete(runId);
      else this.#lastSeq.set(runId, seq);
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

function migrate(db: Database.Database, location: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > schemaVersion) {
    throw new StoreError(StoreErrorCode.STORE_SCHEMA_TOO_NEW, `${location} has schema version ${current}; this build understands up to ${schemaVersion}`);
  }
  // Also the first write: it takes the exclusive lock, so a second coordinator fails here.
  db.transaction(() => {
    for (let version = current; version < schemaVersion; version++) db.exec(migrations[version]!);
    db.pragma(`user_version = ${schemaVersion}`);
  }).immediate();
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

/** SQLite's result codes, as errors that say which file and what to do. */
function storeError(err: unknown, location: string, doing: string): StoreError {
  const code = (err as { code?: string }).code ?? '';
  const detail = (err as Error).message ?? String(err);
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') {
    return new StoreError(StoreErrorCode.STORE_LOCKED, `${location} is locked by another process (is another coordinator using it?): ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_')) {
    return new StoreError(StoreErrorCode.STORE_READ_ONLY, `${location} is read-only: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_FULL') {
    return new StoreError(StoreErrorCode.STORE_FULL, `${location}: the disk (or the configured size limit) is full; new work fails until space is freed, committed work is kept: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_')) {
    return new StoreError(StoreErrorCode.STORE_OPEN_FAILED, `${location} is not a SQLite database or is corrupt: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_')) {
    return new StoreError(StoreErrorCode.STORE_OPEN_FAILED, `cannot open ${location}: ${detail}`, { cause: err });
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    return new StoreError(StoreErrorCode.STORE_CONFLICT, `${location}: ${doing} broke an invariant of the event log: ${detail}`, { cause: err });
  }
  return new StoreError(doing === 'open' ? StoreErrorCode.STORE_OPEN_FAILED : StoreErrorCode.STORE_WRITE_FAILED, `${location}: cannot ${doing}: ${detail}`, { cause: err });
}

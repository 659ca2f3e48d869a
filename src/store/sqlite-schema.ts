/**
 * The SQLite schema, as forward-only migrations. `PRAGMA user_version` holds how many have been
 * applied; a database from a newer build is refused rather than misread.
 */
import type Database from 'better-sqlite3';
import { StoreError, StoreErrorCode } from './run-store.ts';

export const migrations: readonly string[] = [
  // 1: definitions, runs, the event log, and one final result per step path.
  `
  CREATE TABLE definitions (
    workflow_id TEXT NOT NULL,
    hash        TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, hash)
  ) WITHOUT ROWID;

  -- Written twice per run (start, finish), not per step: a step's commit touches only the event log.
  CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
  );
  CREATE INDEX runs_by_status ON runs (status, created_at);
  CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at);
  CREATE INDEX runs_by_finish ON runs (finished_at) WHERE finished_at IS NOT NULL;

  -- A run's whole log in one B-tree: its events (key 'e' + 12-digit seq) and, beside them, one marker per
  -- final step result (key 'r/' + step path, body the seq of the event that recorded it). The primary
  -- key makes a second result for a path fail, and a step's event and marker land in the same page, so
  -- a step's commit writes one page, not one per table.
  CREATE TABLE run_log (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  `,
  // 2: the coordinator's catalog (which version of each workflow is published), whether a definition is
  // declarative (its document compiles back, so its runs recover without a `register`), and StartRun
  // request_ids (kept while their run is).
  `
  ALTER TABLE definitions ADD COLUMN kind TEXT NOT NULL DEFAULT 'code';

  CREATE TABLE published_workflows (
    workflow_id     TEXT PRIMARY KEY,
    definition_hash TEXT NOT NULL,
    published_at    INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE run_requests (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX run_requests_by_run ON run_requests (run_id);
  `,
  // 3: the event log as a rowid table, so a step's commit writes fewer pages. In version 1's WITHOUT
  // ROWID log every interior cell held a whole event, so the B-tree was deep and appends split 3-5 pages
  // at a time. Now an event's rowid is (run number << 32) | seq: a run's events are one rowid range,
  // appends go to the right-most leaf (SQLite then adds a page instead of rebalancing), and interior
  // cells are just integers. The one-final-result-per-path guarantee moves to a small table of its own.
  // `runs` gets an explicit INTEGER PRIMARY KEY for that number because VACUUM may renumber an implicit
  // rowid. No AUTOINCREMENT (it would write sqlite_sequence at every run start): a number is reused only
  // after its run was pruned, together with its events and results.
  `
  CREATE TABLE runs_v3 (
    run_num         INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL UNIQUE,
    workflow_id     TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
  );
  INSERT INTO runs_v3 (run_num, run_id, workflow_id, definition_hash, status, created_at, finished_at)
    SELECT rowid, run_id, workflow_id, definition_hash, status, created_at, finished_at FROM runs ORDER BY rowid;
  DROP TABLE runs;
  ALTER TABLE runs_v3 RENAME TO runs;
  -- No runs_by_finish any more: it was one more page at every run's finish; pruning finds finished runs
  -- through runs_by_status (a run finishes after it was created).
  CREATE INDEX runs_by_status ON runs (status, created_at);
  CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at);

  -- id = (runs.run_num << 32) | seq; body = the event's JSON.
  CREATE TABLE run_events (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
  );
  -- One row per final step result (completed or skipped): the primary key makes a second one fail.
  CREATE TABLE step_results (
    run_num INTEGER NOT NULL,
    path    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (run_num, path)
  ) WITHOUT ROWID;

  INSERT INTO run_events (id, body)
    SELECT (runs.run_num << 32) + CAST(substr(run_log.key, 2) AS INTEGER), run_log.body
    FROM run_log JOIN runs ON runs.run_id = run_log.run_id WHERE run_log.key < 'f' ORDER BY 1;
  INSERT INTO step_results (run_num, path, seq)
    SELECT runs.run_num, substr(run_log.key, 3), CAST(run_log.body AS INTEGER)
    FROM run_log JOIN runs ON runs.run_id = run_log.run_id WHERE run_log.key >= 'r/' ORDER BY 1, 2;
  DROP TABLE run_log;
  `,
  // 4: no new tables. The runs table is now written behind the event log (run-rows.ts): a file may hold
  // runs with events and no row yet, which older builds would neither recover nor number past.
  `
  SELECT 1;
  `,
];

export const schemaVersion = migrations.length;

/** Applies the migrations a file lacks, in one transaction; refuses a file from a newer build. */
export function migrate(db: Database.Database, location: string): void {
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

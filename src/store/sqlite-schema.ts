/**
 * The SQLite schema, as forward-only migrations. `PRAGMA user_version` holds how many have been
 * applied; a database from a newer build is refused rather than misread.
 */
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
];

export const schemaVersion = migrations.length;

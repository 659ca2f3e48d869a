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

  CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    last_seq        INTEGER NOT NULL
  );
  CREATE INDEX runs_by_status ON runs (status, created_at);
  CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at);
  CREATE INDEX runs_by_finish ON runs (finished_at) WHERE finished_at IS NOT NULL;

  CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;

  -- A step's final result (completed or skipped) is recorded once: a second one is a bug, and fails.
  CREATE TABLE step_results (
    run_id TEXT NOT NULL,
    path   TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (run_id, path)
  ) WITHOUT ROWID;
  `,
];

export const schemaVersion = migrations.length;

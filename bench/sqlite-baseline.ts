/**
 * The raw SQLite baselines for the durable figures: a 1 KB JSON row inserted in its own transaction,
 * and 64 rows per transaction, on a WAL database with synchronous=FULL (the store's default).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export interface RawSqlite {
  /** µs per single-row commit. */
  commitUs(count: number): number;
  /** µs per row when `rowsPerCommit` rows share a commit. */
  groupCommitUsPerRow(commits: number, rowsPerCommit: number): number;
  close(): void;
}

const row = JSON.stringify({ payload: 'x'.repeat(940) }); // ≈ 1 KB, as in the perf anchors

export function openRawSqlite(): RawSqlite {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-bench-raw-'));
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO rows (body) VALUES (?)');
  const one = db.transaction(() => insert.run(row));
  const many = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run(row);
  });
  return {
    commitUs(count) {
      const started = performance.now();
      for (let i = 0; i < count; i++) one();
      return ((performance.now() - started) * 1000) / count;
    },
    groupCommitUsPerRow(commits, rowsPerCommit) {
      const started = performance.now();
      for (let i = 0; i < commits; i++) many(rowsPerCommit);
      return ((performance.now() - started) * 1000) / (commits * rowsPerCommit);
    },
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

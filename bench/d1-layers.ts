/**
 * D1 layer by layer: what a durable step costs without the engine (the store alone) and without the
 * store's code (its SQL alone), each timed against its own interleaved raw commits like D1. The gaps
 * between the layers say where D1's distance from one raw commit comes from.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteRunStore, type RunEvent } from '../src/index.ts';

/** One run of `steps` durable steps, ten commits; `prepare` builds what `run` needs, outside the timing. */
export interface Layer {
  prepare(): void;
  run(): Promise<void>;
  close(): Promise<void>;
}

/** The events the engine stores for a run of `steps` tool steps, as the commits it makes. */
function runCommits(runId: string, steps: number): RunEvent[][] {
  let seq = 0;
  const at = Date.now();
  const event = (fields: object) => ({ ...fields, seq: ++seq, runId, at }) as RunEvent;
  const commits: RunEvent[][] = [];
  let commit: RunEvent[] = [
    event({ type: 'run_started', workflowId: 'durable-bench', workflowName: 'durable-bench', definitionHash: 'f'.repeat(64), totalSteps: steps, input: { workflowId: 'bench-d', initialData: {}, variables: {}, metadata: {} } }),
  ];
  for (let i = 0; i < steps; i++) {
    const path = `s${i}`;
    commit.push(event({ type: 'step_started', path, stepId: path, kind: 'tool', attempt: 1 }));
    commit.push(event({ type: 'step_completed', path, result: { stepId: path, path, kind: 'tool', status: 'completed', executionTimeMs: 0.05, attempts: 1 } }));
    if (i === steps - 1) commit.push(event({ type: 'run_completed' }));
    commits.push(commit);
    commit = [];
  }
  return commits;
}

/** SqliteRunStore without the engine: the same events, appended and committed as the engine does. */
export function storeAlone(steps: number): Layer {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-bench-store-'));
  const store = SqliteRunStore.open({ path: join(dir, 'runs.db') });
  let runs = 0;
  let next: RunEvent[][] = [];
  return {
    prepare() {
      next = runCommits(`store-alone-${++runs}`, steps);
    },
    async run() {
      for (const commit of next) {
        const stored = store.append(commit);
        store.flush();
        await stored;
      }
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The store's SQL without its code: on a file with its schema and pragmas, each commit inserts the step's
 * two event rows (serialised beforehand) and its step_results row, as SqliteRunStore does for a step.
 */
export function sqlAlone(steps: number): Layer {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-bench-sql-'));
  const path = join(dir, 'runs.db');
  SqliteRunStore.open({ path }).close();
  const db = new Database(path);
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const insertEvents = db.prepare('INSERT INTO run_events (id, body) VALUES ((? << 32) | ?, ?), ((? << 32) | ?, ?)');
  const insertResult = db.prepare('INSERT INTO step_results (run_num, path, seq) VALUES (?, ?, ?)');
  const commitStep = db.transaction((num: number, started: string, completed: string, seq: number, path: string) => {
    insertEvents.run(num, seq, started, num, seq + 1, completed);
    insertResult.run(num, path, seq + 1);
  });
  let num = 0;
  let bodies: [string, string][] = [];
  return {
    prepare() {
      num += 1;
      bodies = runCommits(`sql-alone-${num}`, steps).map((commit) => {
        const [started, completed] = commit.filter((e) => e.type === 'step_started' || e.type === 'step_completed');
        return [JSON.stringify(started), JSON.stringify(completed)];
      });
    },
    async run() {
      for (let i = 0; i < bodies.length; i++) commitStep(num, bodies[i]![0], bodies[i]![1], 2 * i + 2, `s${i}`);
    },
    async close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

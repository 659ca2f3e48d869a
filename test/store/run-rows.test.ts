/**
 * The `runs` table is written behind the event log: a run's row is queued when its events commit, written
 * with a later batch (or by a timer, or before a query of the table), and rebuilt from the log when a
 * file is opened whose last process died with rows still queued.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent } from 'jaf-workflows';
import { maxQueuedRunRows, maxRunRowDelayMs, RunRowQueue, type RunRow } from '../../src/store/run-rows.ts';
import { SqliteRunStore } from '../../src/store/sqlite-store.ts';

const dirs: string[] = [];
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-run-rows-'));
  dirs.push(dir);
  return join(dir, 'runs.db');
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function started(runId: string, at: number, workflowId = 'wf'): RunEvent {
  return {
    type: 'run_started',
    seq: 1,
    runId,
    at,
    workflowId,
    workflowName: workflowId,
    definitionHash: 'h1',
    totalSteps: 1,
    input: { workflowId: 'c', userContext: null, initialData: {}, variables: {}, metadata: {} },
  };
}
const stepStarted = (runId: string, seq: number): RunEvent => ({ type: 'step_started', seq, runId, at: seq, path: 'a', parent: undefined, stepId: 'a', kind: 'tool', attempt: 1 });
const runDone = (runId: string, seq: number, at: number): RunEvent => ({ type: 'run_completed', seq, runId, at });

const row = (runId: string, num: number): RunRow => ({ num, runId, workflowId: 'wf', definitionHash: 'h', createdAt: 1, status: 'running', finishedAt: undefined, stored: false });

describe('RunRowQueue', () => {
  it('is due once it holds enough rows or its oldest row waited long enough', () => {
    const queue = new RunRowQueue();
    expect(queue.due(0)).toBe(false);
    queue.apply([{ kind: 'started', row: row('r1', 1) }], 1000);
    expect(queue.due(1000 + maxRunRowDelayMs - 1)).toBe(false);
    expect(queue.due(1000 + maxRunRowDelayMs)).toBe(true);
    for (let i = 2; i <= maxQueuedRunRows; i++) queue.apply([{ kind: 'started', row: row(`r${i}`, i) }], 1001);
    expect(queue.due(1001)).toBe(true);
  });

  it('folds a finish into a queued start, and queues a finish alone as an update of a stored row', () => {
    const queue = new RunRowQueue();
    queue.apply([{ kind: 'started', row: row('r1', 1) }, { kind: 'finished', num: 1, runId: 'r1', status: 'completed', finishedAt: 9 }], 0);
    expect(queue.get('r1')).toMatchObject({ status: 'completed', finishedAt: 9, stored: false });
    queue.apply([{ kind: 'finished', num: 7, runId: 'old', status: 'failed', finishedAt: 5 }], 0);
    expect(queue.get('old')).toMatchObject({ num: 7, status: 'failed', stored: true });
  });

  it('forgets written rows, but not one a later change replaced meanwhile', () => {
    const queue = new RunRowQueue();
    queue.apply([{ kind: 'started', row: row('r1', 1) }, { kind: 'started', row: row('r2', 2) }], 0);
    const written = queue.rows();
    queue.apply([{ kind: 'started', row: row('r2', 3) }], 1);
    queue.written(written);
    expect(queue.size).toBe(1);
    expect(queue.get('r2')?.num).toBe(3);
    queue.written(queue.rows());
    expect(queue.size).toBe(0);
    expect(queue.due(10_000)).toBe(false);
  });
});

describe('SqliteRunStore runs rows', () => {
  it('answers getRun from a queued row, and writes queued rows before listing runs', async () => {
    const store = SqliteRunStore.open({ path: dbPath() });
    await store.append([started('q1', 10), stepStarted('q1', 2)]);
    await store.append([runDone('q1', 3, 20)]);
    expect(await store.getRun('q1')).toMatchObject({ runId: 'q1', status: 'completed', createdAt: 10, finishedAt: 20, lastSeq: 3 });
    expect(await store.readEvents('q1')).toHaveLength(3);
    const before = store.commits;
    expect((await store.listRuns({ limit: 10 })).map((r) => [r.runId, r.status])).toEqual([['q1', 'completed']]);
    expect(store.commits).toBe(before + 1); // the queued row, in a transaction of its own
    await store.listRuns({ limit: 10 });
    expect(store.commits).toBe(before + 1); // nothing queued any more
    await store.close();
  });

  it('writes queued rows within maxRunRowDelayMs when no batch comes to carry them', async () => {
    const store = SqliteRunStore.open({ path: dbPath() });
    await store.append([started('t1', 1)]);
    const before = store.commits;
    await new Promise((resolve) => setTimeout(resolve, maxRunRowDelayMs + 100));
    expect(store.commits).toBe(before + 1);
    await store.close();
  });

  it('refuses a second run_started for a run id, queued or stored', async () => {
    const path = dbPath();
    const store = SqliteRunStore.open({ path });
    await store.append([started('dup', 1), runDone('dup', 2, 2)]);
    await expect(store.append([started('dup', 3)])).rejects.toMatchObject({ code: 'STORE_CONFLICT', message: expect.stringContaining('dup already exists') });
    await store.close();
    const reopened = SqliteRunStore.open({ path });
    await expect(reopened.append([started('dup', 4)])).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    await reopened.close();
  });

  it('keeps a batch\'s events when the queued run rows riding with it cannot be written', async () => {
    const path = dbPath();
    await SqliteRunStore.open({ path }).close();
    const db = new Database(path);
    db.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON runs WHEN NEW.run_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poison row'); END");
    db.close();
    const store = SqliteRunStore.open({ path });
    await store.append([started('poison', 1)]);
    // Enough runs for the queue to be due: each batch now carries the poison row and must still commit.
    for (let i = 0; i < maxQueuedRunRows + 2; i++) await store.append([started(`ok${i}`, 2), runDone(`ok${i}`, 2, 3)]);
    await store.append([stepStarted('poison', 2)]);
    expect(await store.getRun(`ok${maxQueuedRunRows + 1}`)).toMatchObject({ status: 'completed', lastSeq: 2 });
    expect(await store.readEvents('poison')).toHaveLength(2);
    // A query of the table needs the rows written: it fails, naming the file, and loses nothing.
    await expect(store.listRuns({ limit: 5 })).rejects.toMatchObject({ name: 'StoreError', message: expect.stringContaining('poison row') });
    expect(await store.readEvents('ok0')).toHaveLength(2);
    await store.close();
  });

  it('rebuilds rows lost with a process from the event log when the file is opened', async () => {
    const path = dbPath();
    const first = SqliteRunStore.open({ path });
    await first.append([started('kept', 1), runDone('kept', 2, 2)]);
    await first.close();
    // What a process killed with rows queued leaves: events of runs without rows, and a 'running' row
    // whose run's log says it completed.
    const db = new Database(path);
    const insert = db.prepare('INSERT INTO run_events (id, body) VALUES ((? << 32) | ?, ?)');
    const log = (num: number, event: RunEvent) => insert.run(num, event.seq, JSON.stringify(event));
    db.prepare("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = 'kept'").run();
    log(2, started('lost-done', 5, 'other'));
    log(2, runDone('lost-done', 2, 8));
    // Run number 3 was taken by a batch that rolled back: a gap.
    log(4, started('lost-running', 6));
    log(4, stepStarted('lost-running', 2));
    db.close();

    const store = SqliteRunStore.open({ path });
    expect(await store.getRun('kept')).toMatchObject({ status: 'completed', finishedAt: 2 });
    expect(await store.getRun('lost-done')).toMatchObject({ workflowId: 'other', definitionHash: 'h1', status: 'completed', createdAt: 5, finishedAt: 8, lastSeq: 2 });
    expect(await store.getRun('lost-running')).toMatchObject({ status: 'running', createdAt: 6, lastSeq: 2 });
    expect((await store.unfinishedRuns()).map((r) => r.runId)).toEqual(['lost-running']);
    // New runs are numbered past every logged one.
    await store.append([started('next', 9)]);
    await store.append([stepStarted('lost-running', 3)]);
    expect(await store.readEvents('next')).toHaveLength(1);
    expect(await store.readEvents('lost-running')).toHaveLength(3);
    await store.close();
  });
});

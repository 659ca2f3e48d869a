import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent, StepResultData } from 'jaf-workflows';
import { MemoryRunStore } from '../../src/store/memory-store.ts';
import { StoreError, type RunStore } from '../../src/store/run-store.ts';
import { SqliteRunStore } from '../../src/store/sqlite-store.ts';
import { migrations, schemaVersion } from '../../src/store/sqlite-schema.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-store-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const result = (path: string, status: StepResultData['status'] = 'completed'): StepResultData => ({
  stepId: path,
  path,
  kind: 'tool',
  status,
  output: { path },
  executionTimeMs: 1,
  attempts: 1,
});

function started(runId: string, at = 1): RunEvent {
  return {
    type: 'run_started',
    seq: 1,
    runId,
    at,
    workflowId: 'wf',
    workflowName: 'wf',
    definitionHash: 'h1',
    totalSteps: 1,
    input: { workflowId: 'c', userContext: null, initialData: {}, variables: {}, metadata: {} },
  };
}
const stepStarted = (runId: string, seq: number, path: string): RunEvent => ({ type: 'step_started', seq, runId, at: seq, path, parent: undefined, stepId: path, kind: 'tool', attempt: 1 });
const stepDone = (runId: string, seq: number, path: string): RunEvent => ({ type: 'step_completed', seq, runId, at: seq, path, parent: undefined, result: result(path) });
const runDone = (runId: string, seq: number, at = seq): RunEvent => ({ type: 'run_completed', seq, runId, at });

const stores: [string, () => RunStore][] = [
  ['memory', () => new MemoryRunStore()],
  ['sqlite', () => SqliteRunStore.open({ path: join(tempDir(), 'runs.db') })],
];

describe.each(stores)('RunStore contract: %s', (_name, open) => {
  it('stores events in seq order and reads them back after a seq', async () => {
    const store = open();
    await store.append([started('r1'), stepStarted('r1', 2, 'a')]);
    await store.append([stepDone('r1', 3, 'a'), runDone('r1', 4)]);
    expect((await store.readEvents('r1')).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect((await store.readEvents('r1', 2)).map((e) => e.type)).toEqual(['step_completed', 'run_completed']);
    expect(await store.readEvents('r1', 2)).toEqual([stepDone('r1', 3, 'a'), runDone('r1', 4)]);
    expect(await store.getRun('r1')).toMatchObject({ runId: 'r1', workflowId: 'wf', definitionHash: 'h1', status: 'completed', lastSeq: 4 });
    await store.close();
  });

  it('reads a run\'s first and last events alone, next to other runs\' histories', async () => {
    const store = open();
    expect(await store.readFirstAndLastEvents('nobody')).toBeUndefined();
    await store.append([started('r1')]);
    expect(await store.readFirstAndLastEvents('r1')).toEqual({ first: started('r1'), last: started('r1') });
    await store.append([started('r2', 2), stepStarted('r2', 2, 'x')]);
    await store.append([stepStarted('r1', 2, 'a'), stepDone('r1', 3, 'a')]);
    await store.append([runDone('r1', 4)]);
    expect(await store.readFirstAndLastEvents('r1')).toEqual({ first: started('r1'), last: runDone('r1', 4) });
    expect(await store.readFirstAndLastEvents('r2')).toEqual({ first: started('r2', 2), last: stepStarted('r2', 2, 'x') });
    await store.close();
  });

  it('refuses a gap in seq and a second final result for a step path', async () => {
    const store = open();
    await store.append([started('r2')]);
    await expect(store.append([stepDone('r2', 3, 'a')])).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    const other = open();
    await other.append([started('r3'), stepDone('r3', 2, 'a')]);
    await expect(other.append([stepDone('r3', 3, 'a')])).rejects.toBeInstanceOf(StoreError);
    await store.close();
    await other.close();
  });

  it('lists unfinished runs, pages runs newest first, and prunes finished ones', async () => {
    const store = open();
    await store.append([started('old', 10), runDone('old', 2, 20)]);
    await store.append([started('live', 30)]);
    await store.append([started('new', 40), runDone('new', 2, 50)]);
    expect((await store.unfinishedRuns()).map((r) => r.runId)).toEqual(['live']);
    const first = await store.listRuns({ limit: 2 });
    expect(first.map((r) => r.runId)).toEqual(['new', 'live']);
    expect((await store.listRuns({ limit: 2, before: first[1]! })).map((r) => r.runId)).toEqual(['old']);
    expect((await store.listRuns({ limit: 5, status: 'completed' })).map((r) => r.runId)).toEqual(['new', 'old']);
    expect(await store.pruneFinished(30)).toBe(1);
    expect(await store.getRun('old')).toBeUndefined();
    expect(await store.readEvents('old')).toEqual([]);
    expect(await store.getRun('live')).toBeDefined();
    await store.close();
  });

  it('keeps definitions by (workflow, hash), idempotently', async () => {
    const store = open();
    const def = { workflowId: 'wf', hash: 'h1', document: '{"v":1}', kind: 'declarative' as const, createdAt: 1 };
    await store.putDefinition(def);
    await store.putDefinition({ ...def, document: 'ignored', createdAt: 2 });
    expect(await store.getDefinition('wf', 'h1')).toEqual(def);
    expect(await store.getDefinition('wf', 'h2')).toBeUndefined();
    await store.close();
  });

  it('publishes a stored version per workflow, listed by id after a cursor', async () => {
    const store = open();
    for (const [workflowId, hash] of [['b', 'h1'], ['a', 'h1'], ['a', 'h2'], ['c', 'h1']] as const) {
      await store.putDefinition({ workflowId, hash, document: '{}', kind: 'declarative', createdAt: 1 });
    }
    await store.publishWorkflow({ workflowId: 'a', definitionHash: 'h1', publishedAt: 1 });
    await store.publishWorkflow({ workflowId: 'b', definitionHash: 'h1', publishedAt: 2 });
    await store.publishWorkflow({ workflowId: 'a', definitionHash: 'h2', publishedAt: 3 });
    await expect(store.publishWorkflow({ workflowId: 'c', definitionHash: 'nope', publishedAt: 4 })).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    expect(await store.getPublishedWorkflow('a')).toEqual({ workflowId: 'a', definitionHash: 'h2', publishedAt: 3 });
    expect(await store.getPublishedWorkflow('c')).toBeUndefined();
    expect((await store.listPublishedWorkflows({ limit: 10 })).map((p) => p.workflowId)).toEqual(['a', 'b']);
    expect((await store.listPublishedWorkflows({ after: 'a', limit: 10 })).map((p) => p.workflowId)).toEqual(['b']);
    expect(await store.listPublishedWorkflows({ limit: 1 })).toHaveLength(1);
    await store.close();
  });

  it('claims a request_id once, releases it only for its own run, and prunes it with its run', async () => {
    const store = open();
    const first = { requestId: 'req-1', fingerprint: 'f1', runId: 'r1', createdAt: 1 };
    expect(await store.claimRunRequest(first)).toEqual(first);
    expect(await store.claimRunRequest({ ...first, fingerprint: 'f2', runId: 'r2' })).toEqual(first);
    await store.releaseRunRequest('req-1', 'r2');
    expect(await store.claimRunRequest({ ...first, runId: 'r3' })).toEqual(first);
    await store.releaseRunRequest('req-1', 'r1');
    const again = { ...first, runId: 'r4' };
    expect(await store.claimRunRequest(again)).toEqual(again);
    await store.append([started('r4', 1), runDone('r4', 2, 5)]);
    expect(await store.pruneFinished(10)).toBe(1);
    const fresh = { ...first, runId: 'r5' };
    expect(await store.claimRunRequest(fresh)).toEqual(fresh);
    await store.close();
  });
});

describe('SqliteRunStore', () => {
  it('commits appends made in one turn in one transaction, and survives a reopen', async () => {
    const path = join(tempDir(), 'group.db');
    const store = SqliteRunStore.open({ path });
    const appends = [];
    for (let i = 0; i < 50; i++) appends.push(store.append([started(`g${i}`), stepDone(`g${i}`, 2, 'a')]));
    await Promise.all(appends);
    await store.close();
    const reopened = SqliteRunStore.open({ path });
    expect((await reopened.unfinishedRuns()).length).toBe(50);
    expect(await reopened.readEvents('g49')).toHaveLength(2);
    await reopened.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM step_results').pluck().get()).toBe(50);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('fails to start on a file that is not a database, naming it', () => {
    const path = join(tempDir(), 'corrupt.db');
    writeFileSync(path, 'this is not a sqlite database, just text that is long enough to have a header'.repeat(100));
    expect(() => SqliteRunStore.open({ path })).toThrow(expect.objectContaining({ code: 'STORE_OPEN_FAILED', message: expect.stringContaining(path) }));
  });

  it('fails to start while another store holds the file', async () => {
    const path = join(tempDir(), 'locked.db');
    const first = SqliteRunStore.open({ path });
    expect(() => SqliteRunStore.open({ path, busyTimeoutMs: 50 })).toThrow(expect.objectContaining({ code: 'STORE_LOCKED', message: expect.stringContaining(path) }));
    await first.close();
    const second = SqliteRunStore.open({ path });
    await second.close();
  });

  it('migrates a version-1 file in place, keeping its runs and definitions', async () => {
    const path = join(tempDir(), 'v1.db');
    const db = new Database(path);
    db.exec(migrations[0]!);
    db.pragma('user_version = 1');
    db.prepare("INSERT INTO definitions VALUES ('wf', 'h1', '{}', 7)").run();
    db.prepare("INSERT INTO runs VALUES ('r1', 'wf', 'h1', 'running', 1, NULL)").run();
    db.prepare("INSERT INTO run_log VALUES ('r1', 'e000000000001', ?)").run(JSON.stringify(started('r1')));
    db.close();
    const store = SqliteRunStore.open({ path });
    expect(await store.getDefinition('wf', 'h1')).toEqual({ workflowId: 'wf', hash: 'h1', document: '{}', kind: 'code', createdAt: 7 });
    expect(await store.readEvents('r1')).toEqual([started('r1')]);
    await store.publishWorkflow({ workflowId: 'wf', definitionHash: 'h1', publishedAt: 8 });
    await store.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(schemaVersion);
    check.close();
  });

  it('migrates a version-2 file to the rowid event log, keeping events, seqs and the one-result-per-path rule', async () => {
    const path = join(tempDir(), 'v2.db');
    const db = new Database(path);
    db.exec(migrations[0]!);
    db.exec(migrations[1]!);
    db.pragma('user_version = 2');
    const insertRun = db.prepare('INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)');
    const insertLog = db.prepare('INSERT INTO run_log VALUES (?, ?, ?)');
    const key = (seq: number) => `e${String(seq).padStart(12, '0')}`;
    insertRun.run('done', 'wf', 'h1', 'completed', 1, 4);
    insertRun.run('live', 'wf', 'h1', 'running', 2, null);
    for (const event of [started('done'), stepDone('done', 2, 'a'), runDone('done', 3)]) insertLog.run(event.runId, key(event.seq), JSON.stringify(event));
    insertLog.run('done', 'r/a', '2');
    const live = [started('live', 2), stepStarted('live', 2, 'a'), stepDone('live', 3, 'a'), stepStarted('live', 4, 'b')];
    for (const event of live) insertLog.run(event.runId, key(event.seq), JSON.stringify(event));
    insertLog.run('live', 'r/a', '3');
    db.close();

    const store = SqliteRunStore.open({ path });
    expect(await store.readEvents('live')).toEqual(live);
    expect(await store.readEvents('live', 2)).toEqual(live.slice(2));
    expect(await store.readEvents('done')).toEqual([started('done'), stepDone('done', 2, 'a'), runDone('done', 3)]);
    expect((await store.unfinishedRuns()).map((r) => [r.runId, r.lastSeq])).toEqual([['live', 4]]);
    expect(await store.getRun('done')).toMatchObject({ status: 'completed', finishedAt: 4, lastSeq: 3 });
    // The migrated marker still makes the database refuse a second result for step a.
    await expect(store.append([stepDone('live', 5, 'a')])).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    await store.close();

    const reopened = SqliteRunStore.open({ path });
    await expect(reopened.append([stepDone('live', 6, 'b')])).rejects.toMatchObject({ code: 'STORE_CONFLICT' }); // seq 5 is missing
    await reopened.close();
    const again = SqliteRunStore.open({ path });
    await again.append([stepDone('live', 5, 'b'), runDone('live', 6)]);
    expect((await again.readEvents('live')).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await again.getRun('live')).toMatchObject({ status: 'completed', lastSeq: 6 });
    expect(await again.pruneFinished(10)).toBe(2);
    await again.close();

    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(schemaVersion);
    expect(check.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'run_log'").pluck().get()).toBe(0);
    expect(check.prepare('SELECT count(*) FROM run_events').pluck().get()).toBe(0);
    expect(check.prepare('SELECT count(*) FROM step_results').pluck().get()).toBe(0);
    check.close();
  });

  it('refuses a schema newer than it understands', () => {
    const path = join(tempDir(), 'future.db');
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    expect(() => SqliteRunStore.open({ path })).toThrow(expect.objectContaining({ code: 'STORE_SCHEMA_TOO_NEW' }));
  });

  it('when full, fails new work clearly and keeps what was committed', async () => {
    const path = join(tempDir(), 'full.db');
    const store = SqliteRunStore.open({ path, maxSizeBytes: 64 * 1024 });
    await store.append([started('kept'), stepDone('kept', 2, 'a')]);
    const big = (runId: string): RunEvent => ({ type: 'step_completed', seq: 2, runId, at: 2, path: 'x', parent: undefined, result: { ...result('x'), output: 'x'.repeat(200_000) } });
    await store.append([started('too_big')]);
    await expect(store.append([big('too_big')])).rejects.toMatchObject({ code: 'STORE_FULL', message: expect.stringContaining(path) });
    await expect(store.append([stepDone('too_big', 2, 'y')])).rejects.toMatchObject({ code: 'STORE_RUN_BROKEN' });
    await store.close();
    const reopened = SqliteRunStore.open({ path });
    expect(await reopened.readEvents('kept')).toHaveLength(2);
    expect((await reopened.readEvents('too_big')).map((e) => e.type)).toEqual(['run_started']);
    await reopened.close();
  });
});

describe('SqliteRunStore on a read-only file', () => {
  it('fails to start with STORE_READ_ONLY, naming the file', async () => {
    const path = join(tempDir(), 'readonly.db');
    await (SqliteRunStore.open({ path })).close();
    // Root ignores file modes, so the file is made immutable instead (chattr); chmod covers other users.
    const immutable = spawnSync('chattr', ['+i', path]).status === 0;
    if (!immutable) chmodSync(path, 0o444);
    try {
      expect(() => SqliteRunStore.open({ path })).toThrow(expect.objectContaining({ code: 'STORE_READ_ONLY', message: expect.stringContaining(path) }));
    } finally {
      if (immutable) spawnSync('chattr', ['-i', path]);
      else chmodSync(path, 0o644);
    }
  });
});

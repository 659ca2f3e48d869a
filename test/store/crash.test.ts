/**
 * The crash test: a child process runs 200 workflows of 10 steps on a SQLite store and is killed with
 * SIGKILL at random points, then restarted, until a last run finishes. The side-effect ledger the
 * tools write (an oracle outside the engine) and the store are then checked against what an
 * uninterrupted run would have done.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent } from 'jaf-workflows';
import { expectedOutput, runIdOf } from '../fixtures/crash/expected.ts';

const RUNS = 200;
const STEPS = 10;
const KILLS = 4;
const child = fileURLToPath(new URL('../fixtures/crash/child.ts', import.meta.url));
const dirs: string[] = [];
afterAll(() => { if (!process.env.KEEP_CRASH_DIRS) dirs.forEach((d) => rmSync(d, { recursive: true, force: true })); });

/** A small seeded PRNG (mulberry32): the kill points of a seed are the same on every run of the test. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ChildRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts the child; if `killAfterMs` is set, SIGKILLs it that long after it reports `started`. */
function runChild(db: string, ledger: string, killAfterMs: number | undefined): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=jaf-source', child, db, ledger, String(RUNS), String(STEPS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const guard = setTimeout(() => proc.kill('SIGKILL'), 90_000);
    proc.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (killAfterMs !== undefined && stdout.includes('started')) {
        setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
        killAfterMs = undefined;
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('crash recovery (SIGKILL at random points)', () => {
  it.each([1, 2, 3])('seed %i: every run completes, committed steps never run again, outputs equal an uninterrupted run', async (seed) => {
    const dir = mkdtempSync(join(tmpdir(), `jaf-crash-${seed}-`));
    dirs.push(dir);
    const db = join(dir, 'runs.db');
    const ledger = join(dir, 'ledger.txt');
    const random = prng(seed);

    let killed = 0;
    let resumedTotal = 0;
    for (let k = 0; k < KILLS; k++) {
      const run = await runChild(db, ledger, 10 + Math.floor(random() * 150));
      if (run.signal === 'SIGKILL') killed += 1;
      else expect(run.code, run.stderr).toBe(0);
      resumedTotal += Number(/resumed=(\d+)/.exec(run.stdout)?.[1] ?? 0);
    }
    const last = await runChild(db, ledger, undefined);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stdout).toMatch(/done \d+ not_completed=0/);
    resumedTotal += Number(/resumed=(\d+)/.exec(last.stdout)?.[1] ?? 0);
    // The test must have crashed runs mid-way, or it proves nothing.
    expect(killed, `kills ${killed}, resumed ${resumedTotal}`).toBeGreaterThan(0);
    expect(resumedTotal, `kills ${killed}, resumed ${resumedTotal}`).toBeGreaterThan(0);

    const store = new Database(db, { readonly: true });
    try {
      const statuses = store.prepare('SELECT status, count(*) AS n FROM runs GROUP BY status').all();
      expect(statuses).toEqual([{ status: 'completed', n: RUNS }]);
      // Exactly one recorded result per step path.
      expect(store.prepare('SELECT count(*) FROM step_results').pluck().get()).toBe(RUNS * STEPS);
      const perRun = store.prepare('SELECT count(DISTINCT path) FROM step_results GROUP BY run_num').pluck().all() as number[];
      expect(new Set(perRun)).toEqual(new Set([STEPS]));
      // Each result row points at a stored completion of its path.
      const pointing =
        'SELECT count(*) FROM step_results JOIN run_events ON run_events.id = (step_results.run_num << 32) | step_results.seq ' +
        "WHERE json_extract(run_events.body, '$.type') = 'step_completed' AND json_extract(run_events.body, '$.path') = step_results.path";
      expect(store.prepare(pointing).pluck().get()).toBe(RUNS * STEPS);
      // Every run's seqs are contiguous from 1.
      const seqs = store.prepare('SELECT count(*) AS n, min(id & 4294967295) AS first, max(id & 4294967295) AS last FROM run_events GROUP BY id >> 32').all() as { n: number; first: number; last: number }[];
      expect(seqs).toHaveLength(RUNS);
      for (const run of seqs) expect(run).toEqual({ n: run.last, first: 1, last: run.n });

      const committed = new Map<string, number>();
      const bodies = store.prepare('SELECT body FROM run_events WHERE body LIKE \'%"type":"step_completed"%\'').pluck().all() as string[];
      for (const body of bodies) {
        const event = JSON.parse(body) as RunEvent & { type: 'step_completed'; path: string; result: { output: unknown; attempts: number } };
        const step = Number(event.path.slice(1));
        // Outputs equal those of an uninterrupted run.
        expect(event.result.output).toEqual({ [`s${step}`]: expectedOutput(event.runId, step) });
        committed.set(`${event.runId}:${event.path}`, event.result.attempts);
      }
      expect(committed.size).toBe(RUNS * STEPS);

      const executions = new Map<string, number[]>();
      for (const line of readFileSync(ledger, 'utf8').split('\n')) {
        if (line === '') continue;
        const [key, attempt] = line.split(' ');
        executions.set(key!, [...(executions.get(key!) ?? []), Number(attempt)]);
      }
      let extra = 0;
      for (let i = 0; i < RUNS; i++) {
        for (let s = 0; s < STEPS; s++) {
          const key = `${runIdOf(i)}:s${s}`;
          const attempts = executions.get(key) ?? [];
          const committedAttempt = committed.get(key)!;
          // The attempt that committed ran, and nothing ran after the commit (a re-run would carry a higher
          // attempt, since the committed attempt's start is stored too). An attempt whose start had not been
          // stored when the process died runs again under the same number: at most once per kill.
          expect(attempts, key).toContain(committedAttempt);
          expect(Math.max(...attempts), key).toBe(committedAttempt);
          expect(attempts.length - 1, key).toBeLessThanOrEqual(killed);
          extra += attempts.length - 1;
        }
      }
      // Re-executions are the steps that were in flight at a kill: at most a batch's worth per kill.
      expect(extra).toBeLessThanOrEqual(killed * RUNS);
    } finally {
      store.close();
    }
  }, 120_000);
});

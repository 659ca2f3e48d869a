/**
 * The jafw CLI in-process: main(argv, io) against a real coordinator on 127.0.0.1:0 over a real engine
 * and MemoryRunStore.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { main } from '../../src/cli/main.ts';
import { quietLogger } from '../helpers/logging.ts';

/** `gate` holds its step until `openGate()`; `gateEntered` resolves when it is waiting. */
let openGate: (() => void) | undefined;
let gateEntered: (() => void) | undefined;

const blockStarted = new Map<string, () => void>();
const blockReady = (key: string) => new Promise<void>((resolve) => blockStarted.set(key, resolve));

const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({ name: 'add', execute: (args: { a: number; b: number }) => ({ sum: args.a + args.b }) }),
  new Tool({
    name: 'fail',
    execute: () => {
      throw Object.assign(new Error('card declined'), { code: 'CARD_DECLINED' });
    },
  }),
  new Tool({
    name: 'gate',
    execute: () =>
      new Promise((resolve) => {
        openGate = () => resolve({ opened: true });
        gateEntered?.();
      }),
  }),
  new Tool({
    name: 'block',
    execute: (args: { key: string }, ctx) =>
      new Promise((_resolve, reject) => {
        blockStarted.get(args.key)?.();
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason ?? new Error('aborted')), { once: true });
      }),
  }),
];

const PIPELINE = `id: pipeline
steps:
  - id: greet
    tool: echo
    args:
      greeting: "'hello ' + vars.who"
  - id: sum
    tool: add
    args:
      a: vars.x
      b: "2"
`;
const FAILING = `id: failing\nsteps:\n  - id: charge\n    tool: fail\n`;
const BLOCKING = `id: blocking\nsteps:\n  - id: wait\n    tool: block\n    args:\n      key: vars.key\n`;
const INVALID = `id: broken\nsteps:\n  - id: nothing\n`;
const GATED = `id: gated\nsteps:\n  - id: before\n    tool: echo\n  - id: wait\n    tool: gate\n  - id: after\n    tool: echo\n`;

let dir: string;
let store: MemoryRunStore;
let engine: WorkflowEngine;
let coordinator: Coordinator;
let address: string;

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function cli(...argv: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: { JAFW_ADDRESS: address },
  });
  return { code, out, err };
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jafw-cli-'));
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
  coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger() });
  address = `127.0.0.1:${coordinator.port}`;
});

afterAll(async () => {
  await coordinator?.close(1000);
  await engine?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('jafw', () => {
  it('validate: OK for a good document, each issue for a bad one', async () => {
    const ok = await cli('validate', file('ok.yaml', PIPELINE));
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^OK: .*pipeline/);
    const bad = await cli('validate', file('bad.yaml', INVALID));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/problem/);
    expect(bad.out).toContain('/steps/0');
    const missing = await cli('validate', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read');
  });

  it('run: prints each step started and finished, the final status, exit 0', async () => {
    const result = await cli('run', file('pipeline.yaml', PIPELINE), '--input', '{"who":"ada","x":4}');
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/greet started/);
    expect(result.out).toMatch(/✓ greet completed in [\d.]+ ms/);
    expect(result.out).toMatch(/sum started/);
    expect(result.out).toMatch(/✓ sum completed/);
    expect(result.out).toContain('Final status: completed');
  });

  it('run: a failing workflow exits 1 and names the error', async () => {
    const result = await cli('run', file('failing.yaml', FAILING));
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/✗ charge failed/);
    expect(result.out).toContain('card declined');
    expect(result.out).toContain('Final status: failed');
  });

  it('run: bad --input and unreachable coordinator are usage/connection errors (exit 2)', async () => {
    const bad = await cli('run', file('p2.yaml', PIPELINE), '--input', '{nope');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--input');
    const unknown = await cli('run', file('unknown.yaml', 'id: u\nsteps:\n  - id: a\n    tool: nope\n'));
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/INVALID_ARGUMENT|FAILED_PRECONDITION|NOT_FOUND/);
    const usage = await cli('frobnicate');
    expect(usage.code).toBe(2);
  });

  it('get, list, watch of a finished run', async () => {
    const ran = await cli('run', file('pipeline2.yaml', PIPELINE), '--input', '{"who":"bob","x":1}');
    const runId = /run (runs\/\S+) started/.exec(ran.out)?.[1];
    expect(runId).toBeDefined();
    const got = await cli('get', runId!);
    expect(got.code).toBe(0);
    expect(got.out).toContain('Status:    completed');
    expect(got.out).toMatch(/✓ greet: completed/);
    expect(got.out).toContain('"sum":3');
    const listed = await cli('list', '--workflow', 'pipeline', '--status', 'completed');
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(runId!.replace('runs/', ''));
    const watched = await cli('watch', runId!);
    expect(watched.code).toBe(0);
    expect(watched.out).toContain('Final status: completed');
    const after = await cli('watch', runId!, '--after-seq', '2');
    expect(after.out).not.toContain('#1 ');
    // After the last event nothing streams; the status still comes back (exit 0).
    const lastSeq = /#(\d+) run \S+ completed/.exec(watched.out)![1]!;
    const atEnd = await cli('watch', runId!, '--after-seq', lastSeq);
    expect(atEnd.code).toBe(0);
    expect(atEnd.out).toContain('Final status: completed');
    const missing = await cli('get', 'no-such-run');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/NOT_FOUND|INVALID_ARGUMENT/);
  });

  it('cancel a running run; watch reports cancelled and exits 1', async () => {
    const started = blockReady('c1');
    const running = cli('run', file('blocking.yaml', BLOCKING), '--input', '{"key":"c1"}');
    await started;
    const listed = await cli('list', '--status', 'running');
    const runId = /^(\S+)\s+running/m.exec(listed.out)?.[1];
    expect(runId).toBeDefined();
    const watching = cli('watch', runId!);
    const cancelled = await cli('cancel', runId!);
    expect(cancelled.code).toBe(0);
    const ran = await running;
    expect(ran.code).toBe(1);
    expect(ran.out).toContain('Final status: cancelled');
    const watched = await watching;
    expect(watched.code).toBe(1);
    expect(watched.out).toContain('Final status: cancelled');
  });

  it('run --json --input @file prints one JSON event per line; get --json prints the run', async () => {
    const input = file('input.json', '{"who":"cy","x":2}');
    const result = await cli('run', file('pipeline3.yaml', PIPELINE), '--input', `@${input}`, '--json');
    expect(result.code).toBe(0);
    const events = result.out.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => Number(e.seq))).toEqual(events.map((_e, i) => i + 1));
    expect(events.at(-1)).toMatchObject({ event: 'runFinished', runFinished: { status: 'RUN_STATUS_COMPLETED' } });
    const got = await cli('get', String(events[0]!.run), '--json');
    expect(JSON.parse(got.out)).toMatchObject({ name: events[0]!.run, status: 'RUN_STATUS_COMPLETED' });
    const missing = await cli('run', file('p4.yaml', PIPELINE), '--input', `@${join(dir, 'absent.json')}`);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--input: cannot read');
  });

  it('run resumes after the last seq when the coordinator restarts mid-run: every event once', async () => {
    const entered = new Promise<void>((resolve) => (gateEntered = resolve));
    const running = cli('run', file('gated.yaml', GATED), '--json');
    await entered;
    const port = coordinator.port;
    await coordinator.close(200);
    coordinator = await createCoordinator({ engine, store, tools, port, logger: quietLogger() });
    openGate!();
    const result = await running;
    expect(result.code).toBe(0);
    expect(result.err).toMatch(/stream interrupted \(UNAVAILABLE.*\); resuming after seq \d+/);
    const seqs = result.out.trim().split('\n').map((line) => Number((JSON.parse(line) as { seq: string }).seq));
    expect(seqs).toEqual(seqs.map((_s, i) => i + 1));
    expect(result.out).toContain('RUN_STATUS_COMPLETED');
  });

  it('serve refuses a non-loopback host without a token (exit 2)', async () => {
    const result = await cli('serve', '--host', '0.0.0.0', '--port', '0', '--db', join(dir, 'refused.db'));
    expect(result.code).toBe(2);
    expect(result.err).toContain('refusing to listen on 0.0.0.0 with neither a token nor TLS');
  });
});

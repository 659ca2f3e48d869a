/**
 * How the coordinator listens: TLS and mTLS with certificates made by openssl at test time, the refusal
 * to expose an unauthenticated plaintext server, message size limits, the rich error model
 * (google.rpc.Status details) and health watches ended by a graceful close.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, status, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { WorkflowServiceClient } from '../../src/grpc/proto.ts';
import { ServerConfigError } from '../../src/grpc/server-config.ts';
import { callUnary, collectStream, expectFailure, richStatusOf, type AnyClient, type Msg } from '../helpers/grpc.ts';
import { quietLogger } from '../helpers/logging.ts';

const dir = mkdtempSync(join(tmpdir(), 'jaf-tls-'));
const tools = [new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) })];
let store: MemoryRunStore;
let engine: WorkflowEngine;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate, both signed by the CA. */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=jaf-test-ca');
  const sign = (name: string, cn: string, ext: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    execFileSync('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', '-'], {
      cwd: dir,
      input: `${ext}\n`,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  };
  sign('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  sign('client', 'jaf-client', 'extendedKeyUsage=clientAuth');
}

const file = (name: string) => readFileSync(join(dir, name));

beforeAll(() => {
  makeCertificates();
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger() });
});

afterAll(async () => {
  await engine?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function withCoordinator<T>(options: Partial<Parameters<typeof createCoordinator>[0]>, body: (coordinator: Coordinator) => Promise<T>): Promise<T> {
  const coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger(), ...options });
  try {
    return await body(coordinator);
  } finally {
    await coordinator.close(500);
  }
}

describe('TLS and mTLS', () => {
  it('serves TLS to a client that trusts the CA, and refuses a plaintext client', async () => {
    await withCoordinator({ tls: { cert: file('server.pem'), key: file('server.key') } }, async (coordinator) => {
      const secure = new WorkflowServiceClient(`localhost:${coordinator.port}`, credentials.createSsl(file('ca.pem'))) as AnyClient;
      const plain = new WorkflowServiceClient(`localhost:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
      try {
        expect((await callUnary(secure, 'listTools', {})).tools).toHaveLength(1);
        const refused = await expectFailure(callUnary(plain, 'listTools', {}));
        expect(refused.code).toBe(status.UNAVAILABLE);
      } finally {
        secure.close();
        plain.close();
      }
    });
  });

  it('with a client CA (mTLS), accepts a client certificate it signed and refuses a client without one', async () => {
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCa: join(dir, 'ca.pem') };
    await withCoordinator({ tls }, async (coordinator) => {
      const withCert = new WorkflowServiceClient(`localhost:${coordinator.port}`, credentials.createSsl(file('ca.pem'), file('client.key'), file('client.pem'))) as AnyClient;
      const withoutCert = new WorkflowServiceClient(`localhost:${coordinator.port}`, credentials.createSsl(file('ca.pem'))) as AnyClient;
      try {
        expect((await callUnary(withCert, 'listTools', {})).tools).toHaveLength(1);
        const refused = await expectFailure(callUnary(withoutCert, 'listTools', {}));
        expect(refused.code).toBe(status.UNAVAILABLE);
      } finally {
        withCert.close();
        withoutCert.close();
      }
    });
  });

  it('names the file it cannot read', async () => {
    await expect(createCoordinator({ engine, store, tools, tls: { cert: join(dir, 'missing.pem'), key: join(dir, 'server.key') } })).rejects.toThrow(/tls\.cert: cannot read .*missing\.pem/);
  });
});

describe('exposure and limits', () => {
  it('refuses a non-loopback address without a token or TLS, unless told to', async () => {
    await expect(createCoordinator({ engine, store, tools, host: '0.0.0.0' })).rejects.toThrow(ServerConfigError);
    await expect(createCoordinator({ engine, store, tools, host: '0.0.0.0' })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0/);
    await withCoordinator({ host: '0.0.0.0', token: 'a-token' }, async (coordinator) => expect(coordinator.port).toBeGreaterThan(0));
    await withCoordinator({ host: '0.0.0.0', allowInsecureRemote: true }, async (coordinator) => expect(coordinator.port).toBeGreaterThan(0));
  });

  it('checks each limit, naming it and its range', async () => {
    await expect(createCoordinator({ engine, store, tools, limits: { maxReceiveMessageBytes: 10 } })).rejects.toThrow(/maxReceiveMessageBytes must be an integer from 1024 to 67108864, got 10/);
    await expect(createCoordinator({ engine, store, tools, limits: { keepaliveTimeMs: 5 } })).rejects.toThrow(/keepaliveTimeMs must be an integer from 10000/);
  });

  it('answers a request over max_receive_message_length with RESOURCE_EXHAUSTED and keeps serving', async () => {
    await withCoordinator({ limits: { maxReceiveMessageBytes: 64 * 1024 } }, async (coordinator) => {
      const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
      try {
        const huge = `id: huge\ndescription: "${'x'.repeat(100 * 1024)}"\nsteps:\n  - id: s\n    tool: echo\n`;
        const error = await expectFailure(callUnary(client, 'createWorkflow', { document: huge }));
        expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
        expect((await callUnary(client, 'createWorkflow', { document: 'id: small\nsteps:\n  - id: s\n    tool: echo\n' })).workflowId).toBe('small');
      } finally {
        client.close();
      }
    });
  });
});

/**
 * A slow consumer: reads the first event of a stream, then stops reading for half a second while
 * `flood()` makes the run produce many large events; answers what arrived and how the stream ended.
 */
function readThenPause(client: AnyClient, method: string, request: Msg, flood: () => void): Promise<{ received: Msg[]; error: ServiceError | undefined }> {
  return new Promise((resolve) => {
    const received: Msg[] = [];
    const call = client[method]!(request) as NodeJS.EventEmitter & { pause(): void; resume(): void };
    call.on('data', (m: Msg) => {
      received.push(m);
      if (received.length === 1) {
        call.pause();
        flood();
        setTimeout(() => call.resume(), 500);
      }
    });
    call.on('error', (error: ServiceError) => resolve({ received, error }));
    call.on('end', () => resolve({ received, error: undefined }));
  });
}

describe('a slow consumer', () => {
  it('past its buffer, the stream ends RESOURCE_EXHAUSTED; resuming from the last seq gives the rest, no gap, no duplicate', async () => {
    let open: (() => void) | undefined;
    const gate = new Tool({ name: 'gate', execute: () => new Promise((resolve) => (open = () => resolve({ open: true }))) });
    const big = new Tool({ name: 'big', execute: (args: { i: number }) => ({ i: args.i, blob: 'x'.repeat(16 * 1024) }) });
    const local = new WorkflowEngine({ tools: [gate, big], store, logger: quietLogger() });
    const coordinator = await createCoordinator({ engine: local, store, tools: [gate, big], watchBufferEvents: 8, logger: quietLogger() });
    const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
    const steps = 150;
    try {
      const doc = `id: flood\nsteps:\n  - id: g\n    tool: gate\n${Array.from({ length: steps }, (_v, i) => `  - id: s${i}\n    tool: big\n    args:\n      i: "${i}"\n`).join('')}`;
      await callUnary(client, 'createWorkflow', { document: doc });
      const run = await callUnary(client, 'startRun', { workflow: 'workflows/flood' });
      const { received: first, error } = await readThenPause(client, 'watchRun', { name: run.name }, () => open!());
      expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(richStatusOf(error!).errorInfo).toEqual({ reason: 'WATCH_TOO_SLOW', metadata: { retryable: 'true' } });
      const lastSeq = Number(first.at(-1)!.seq);
      expect(lastSeq).toBeLessThan(2 * steps + 4);
      const { messages: rest, error: restError } = await collectStream(client, 'watchRun', { name: run.name, afterSeq: String(lastSeq) });
      expect(restError).toBeUndefined();
      const seqs = [...first, ...rest].map((m) => Number(m.seq));
      expect(seqs).toEqual(seqs.map((_s, i) => i + 1));
      expect(rest.at(-1)).toMatchObject({ event: 'runFinished' });
    } finally {
      client.close();
      await coordinator.close(500);
      await local.close();
    }
  });

  it('ExecuteWorkflow streams the run it starts: after_seq skips, past the end is OUT_OF_RANGE, a request_id retry gives the same events, a paused client is cut off and resumes', async () => {
    let open: (() => void) | undefined;
    const gate = new Tool({ name: 'gate2', execute: () => new Promise((resolve) => (open = () => resolve({ open: true }))) });
    const big = new Tool({ name: 'big2', execute: (args: { i: number }) => ({ i: args.i, blob: 'x'.repeat(16 * 1024) }) });
    const echo = new Tool({ name: 'echo2', execute: (args: Record<string, unknown>) => ({ ...args }) });
    const local = new WorkflowEngine({ tools: [gate, big, echo], store, logger: quietLogger() });
    const coordinator = await createCoordinator({ engine: local, store, tools: [gate, big, echo], watchBufferEvents: 8, logger: quietLogger() });
    const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
    try {
      await callUnary(client, 'createWorkflow', { document: 'id: three\nsteps:\n  - id: a\n    tool: echo2\n  - id: b\n    tool: echo2\n  - id: c\n    tool: echo2\n' });
      const skipped = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/three' }, afterSeq: '2' });
      expect(skipped.error).toBeUndefined();
      expect(skipped.messages.map((m) => Number(m.seq))).toEqual([3, 4, 5, 6, 7, 8]);
      const past = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/three' }, afterSeq: '99' });
      expect(past.error?.code).toBe(status.OUT_OF_RANGE);
      const first = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/three', requestId: 'exec-1' } });
      const retried = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/three', requestId: 'exec-1' } });
      expect(retried.messages.map((m) => [m.seq, m.run])).toEqual(first.messages.map((m) => [m.seq, m.run]));

      const steps = 150;
      const doc = `id: flood2\nsteps:\n  - id: g\n    tool: gate2\n${Array.from({ length: steps }, (_v, i) => `  - id: s${i}\n    tool: big2\n    args:\n      i: "${i}"\n`).join('')}`;
      await callUnary(client, 'createWorkflow', { document: doc });
      const { received, error } = await readThenPause(client, 'executeWorkflow', { run: { workflow: 'workflows/flood2' } }, () => open!());
      expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
      const runName = String(received[0]!.run);
      const lastSeq = Number(received.at(-1)!.seq);
      const rest = await collectStream(client, 'watchRun', { name: runName, afterSeq: String(lastSeq) });
      const seqs = [...received, ...rest.messages].map((m) => Number(m.seq));
      expect(seqs).toEqual(seqs.map((_s, i) => i + 1));
      expect(rest.messages.at(-1)).toMatchObject({ event: 'runFinished' });
    } finally {
      client.close();
      await coordinator.close(500);
      await local.close();
    }
  });

  it('rejects a watch buffer outside its range, naming it', async () => {
    await expect(createCoordinator({ engine, store, tools, watchBufferEvents: 0 })).rejects.toThrow(/watchBufferEvents must be an integer from 1 to 1000000, got 0/);
  });
});

describe('rich errors (google.rpc.Status in grpc-status-details-bin)', () => {
  it('a malformed definition carries ErrorInfo and a BadRequest violation per issue, with AIP-193 field paths', async () => {
    await withCoordinator({}, async (coordinator) => {
      const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
      try {
        const unknownTool = await expectFailure(callUnary(client, 'createWorkflow', { document: 'id: bad\nsteps:\n  - id: a\n    tool: nope\n' }));
        expect(unknownTool.code).toBe(status.INVALID_ARGUMENT);
        const rich = richStatusOf(unknownTool);
        expect(rich).toMatchObject({ code: status.INVALID_ARGUMENT, errorInfo: { reason: 'INVALID_DEFINITION', metadata: {} } });
        expect(rich.fieldViolations).toEqual([{ field: 'document.steps[0].tool', description: expect.stringContaining('nope'), reason: 'UNKNOWN_TOOL' }]);
        const badCel = await expectFailure(callUnary(client, 'createWorkflow', { document: 'id: bad\nsteps:\n  - id: a\n    tool: echo\n    args:\n      x: "vars.x +"\n' }));
        expect(richStatusOf(badCel).fieldViolations).toEqual([
          { field: 'document.steps[0].args.x', description: expect.stringContaining('line 1, column 8'), reason: 'CEL_SYNTAX_ERROR' },
        ]);
      } finally {
        client.close();
      }
    });
  });

  it('a bad request field is a BadRequest violation naming it; a missing run is NOT_FOUND with ErrorInfo only', async () => {
    await withCoordinator({}, async (coordinator) => {
      const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
      try {
        const bad = await expectFailure(callUnary(client, 'listRuns', { pageSize: 5000 }));
        expect(bad.code).toBe(status.INVALID_ARGUMENT);
        expect(richStatusOf(bad).fieldViolations).toEqual([{ field: 'page_size', description: expect.stringContaining('between 0 and 1000'), reason: 'INVALID_REQUEST' }]);
        const missing = await expectFailure(callUnary(client, 'getRun', { name: 'runs/nope' }));
        expect(missing.code).toBe(status.NOT_FOUND);
        const rich = richStatusOf(missing);
        expect(rich.errorInfo).toEqual({ reason: 'RUN_NOT_FOUND', metadata: {} });
        expect(rich.fieldViolations).toBeUndefined();
      } finally {
        client.close();
      }
    });
  });
});

describe('graceful close', () => {
  it('ends open health watches with UNAVAILABLE instead of waiting out the grace period', async () => {
    const healthPkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: false, longs: String, enums: String, defaults: true })) as unknown as {
      grpc: { health: { v1: { Health: ServiceClientConstructor } } };
    };
    const coordinator = await createCoordinator({ engine, store, tools, logger: quietLogger() });
    const health = new healthPkg.grpc.health.v1.Health(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
    try {
      const seen: Msg[] = [];
      const ended = new Promise<ServiceError | undefined>((resolve) => {
        const call = health.watch!({ service: '' }) as NodeJS.EventEmitter;
        call.on('data', (m: Msg) => seen.push(m));
        call.on('error', (e: ServiceError) => resolve(e));
        call.on('end', () => resolve(undefined));
      });
      await expect.poll(() => seen.length).toBeGreaterThan(0);
      const started = Date.now();
      await coordinator.close(20_000);
      // Far below the grace period: the watch did not hold the shutdown.
      expect(Date.now() - started).toBeLessThan(10_000);
      const error = await ended;
      expect(error?.code).toBe(status.UNAVAILABLE);
      expect(seen.map((m) => m.status)).toContain('SERVING');
    } finally {
      health.close();
    }
  });

  it('a WatchRun stream open at close ends with UNAVAILABLE', async () => {
    const blocking = new Tool({ name: 'wait', execute: (_a: unknown, ctx) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stop')))) });
    const local = new WorkflowEngine({ tools: [blocking], store, logger: quietLogger() });
    const coordinator = await createCoordinator({ engine: local, store, tools: [blocking], logger: quietLogger() });
    const client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
    try {
      await callUnary(client, 'createWorkflow', { document: 'id: hold\nsteps:\n  - id: w\n    tool: wait\n' });
      const run = await callUnary(client, 'startRun', { workflow: 'workflows/hold' });
      const watching = collectStream(client, 'watchRun', { name: run.name });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await coordinator.close(5000);
      const { messages, error } = await watching;
      expect(messages.length).toBeGreaterThan(0);
      expect(error?.code).toBe(status.UNAVAILABLE);
    } finally {
      client.close();
      await local.close();
    }
  });
});

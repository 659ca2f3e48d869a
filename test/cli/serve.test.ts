/**
 * `jafw serve`: the server builder in-process, and the real command in a child process (read the
 * printed address, call ListTools, SIGTERM, exit 0).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkServeOptions, startServer } from '../../src/cli/serve.ts';
import { isLoopbackHost as isLoopback } from '../../src/grpc/server-config.ts';
import { connect } from '../../src/cli/client.ts';
import { toProtoStruct } from '../../src/grpc/proto.ts';
import { UsageError } from '../../src/cli/io.ts';
import { quietLogger } from '../helpers/logging.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let dir: string;
let child: ChildProcess | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'jafw-serve-'));
});

afterAll(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const silent = { stdout: { write: () => true }, stderr: { write: () => true } };

describe('jafw serve', () => {
  it('checkServeOptions: loopback is fine; other hosts need a token or --insecure', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(() => checkServeOptions({ host: '0.0.0.0', port: 0, db: 'x' })).toThrow(UsageError);
    expect(() => checkServeOptions({ host: '0.0.0.0', port: 0, db: 'x', token: 't' })).not.toThrow();
    expect(() => checkServeOptions({ host: '0.0.0.0', port: 0, db: 'x', insecure: true })).not.toThrow();
    expect(() => checkServeOptions({ host: '0.0.0.0', port: 0, db: 'x', tls: { cert: 'c.pem', key: 'k.pem' } })).not.toThrow();
    expect(() => checkServeOptions({ host: '0.0.0.0', port: 0, db: 'x' })).toThrow(/--token .*--tls-cert/);
    expect(() => checkServeOptions({ host: '127.0.0.1', port: 0, metricsPort: -1, db: 'x' })).toThrow(/--metrics-port/);
    expect(() => checkServeOptions({ host: '127.0.0.1', port: 70000, db: 'x' })).toThrow(/--port/);
  });

  it('startServer: the built-in and order tools behind a token; close() closes everything', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0, db: join(dir, 'nested', 'a.db'), token: 'tok', logger: quietLogger() }, silent);
    try {
      const conn = connect(server.address, 'tok');
      try {
        const listed = await conn.unary('listTools', {});
        const names = (listed.tools as { name: string }[]).map((t) => t.name);
        expect(names).toEqual(expect.arrayContaining(['echo', 'sha256', 'validate_order', 'update_crm']));
      } finally {
        conn.close();
      }
      const anonymous = connect(server.address, undefined);
      try {
        await expect(anonymous.unary('listTools', {})).rejects.toMatchObject({ code: 16 });
      } finally {
        anonymous.close();
      }
    } finally {
      await server.close();
    }
  });

  it('the real command: prints its address, answers ListTools, exits 0 on SIGTERM', async () => {
    child = spawn(process.execPath, ['--import', 'tsx', '--conditions=jaf-source', 'src/cli/main.ts', 'serve', '--port', '0', '--metrics-port', '0', '--db', join(dir, 'serve.db')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address printed; stdout: ${out}; stderr: ${err}`)), 20_000);
      child!.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        const match = /listening on (\S+)/.exec(out);
        if (match && out.includes('metrics on')) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`serve exited early (${code}); stderr: ${err}`));
      });
    });
    expect(out).toContain('offline scripted model provider');
    expect(out).toMatch(/recovery: 0 unfinished run\(s\) resumed/);
    const conn = connect(address, undefined);
    try {
      const listed = await conn.unary('listTools', {});
      expect((listed.tools as unknown[]).length).toBeGreaterThanOrEqual(12);
    } finally {
      conn.close();
    }
    const metricsUrl = /metrics on (\S+)/.exec(out)![1]!;
    const scrape = await fetch(metricsUrl);
    expect(scrape.status).toBe(200);
    const text = await scrape.text();
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="ListTools"[^}]*grpc_code="OK"[^}]*\} 1/);
    expect(text).toContain('jaf_runs_active 0');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(out).toContain('jafw: stopped');
  });

  it('`npx jafw` (the README\'s second terminal) runs the built command: npm executes the file itself, so the build makes it executable', () => {
    expect(existsSync(join(ROOT, 'dist/src/cli/bin.js')), 'dist/ is built by npm install (prepare) and npm run build').toBe(true);
    const result = spawnSync('npx', ['--no-install', 'jafw', 'validate', 'examples/order-processing.yaml'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('OK: examples/order-processing.yaml');
  });

  it('never writes the token to a log line, even at LOG_LEVEL=trace with bad and good tokens in use', async () => {
    const token = 'tok-9f8e7d6c5b4a-never-logged';
    const server = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=jaf-source', 'src/cli/main.ts', 'serve', '--port', '0', '--no-metrics', '--token', token, '--db', join(dir, 'redact.db')],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'trace' } },
    );
    let out = '';
    let err = '';
    server.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no address printed; stderr: ${err}`)), 20_000);
        server.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          const match = /listening on (\S+)/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
      });
      const wrong = connect(address, `${token}-wrong`);
      const right = connect(address, token);
      try {
        await expect(wrong.unary('listTools', {})).rejects.toMatchObject({ code: 16 });
        const workflow = await right.unary('createWorkflow', { document: 'id: redact\nsteps:\n  - id: a\n    tool: echo\n' });
        await right.unary('startRun', { workflow: workflow.name, metadata: toProtoStruct({ token, note: 'a token passed as data' }) });
      } finally {
        wrong.close();
        right.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
    // Step lines are debug (20): the most verbose logging the server does was on.
    expect(err).toContain('"level":20');
    expect(`${out}\n${err}`).not.toContain(token);
  });
});

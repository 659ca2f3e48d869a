/**
 * `jafw serve`: the server builder in-process, and the real command in a child process (read the
 * printed address, call ListTools, SIGTERM, exit 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkServeOptions, isLoopback, startServer } from '../../src/cli/serve.ts';
import { connect } from '../../src/cli/client.ts';
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
    child = spawn(process.execPath, ['--import', 'tsx', '--conditions=jaf-source', 'src/cli/main.ts', 'serve', '--port', '0', '--db', join(dir, 'serve.db')], {
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
        if (match) {
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
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(out).toContain('jafw: stopped');
  });
});

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtinTools, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type WorkflowResult } from 'jaf-workflows';
import { quietLogger } from '../helpers/logging.ts';

/** Runs `body` against an engine with the built-ins on a real 2-thread pool, always closing it. */
async function withEngine(body: (run: (tool: string, args: unknown) => Promise<WorkflowResult>) => Promise<void>): Promise<void> {
  const engine = new WorkflowEngine({ tools: builtinTools(), pool: { maxThreads: 2 }, logger: quietLogger() });
  let n = 0;
  const run = (tool: string, args: unknown) => {
    const wf = new WorkflowBuilder(`builtin-${tool}-${++n}`).addStep(new ToolStep('call', tool, args)).build();
    return engine.executeWorkflow(wf, new WorkflowContext({ workflowId: 'builtin-test' }));
  };
  try {
    await body(run);
  } finally {
    await engine.close();
  }
}

function outputOf(result: WorkflowResult): unknown {
  expect(result.error).toBeUndefined();
  expect(result.status).toBe('completed');
  return result.steps[0]?.output;
}

describe('built-in tools', () => {
  it('point at tool modules that exist, with the source extension when run from source', () => {
    for (const tool of builtinTools()) {
      expect(tool.execution.kind).toBe('module');
      const url = tool.execution.kind === 'module' ? tool.execution.moduleUrl : '';
      expect(url).toMatch(/\/workers\/tools\/[a-z0-9-]+\.ts$/);
      expect(existsSync(fileURLToPath(url))).toBe(true);
    }
  });

  it('echo returns its arguments', async () => {
    await withEngine(async (run) => {
      expect(outputOf(await run('echo', { message: 'héllo 🎉' }))).toEqual({ message: 'héllo 🎉' });
    });
  });

  it('sleep waits on a pool thread and reports the time', async () => {
    await withEngine(async (run) => {
      const result = await run('sleep', { ms: 30 });
      expect(outputOf(result)).toEqual({ sleptMs: 30 });
      // A timer never fires early (Node rounds to whole ms), so the step cannot take less.
      expect(result.steps[0]!.executionTimeMs).toBeGreaterThanOrEqual(29);
    });
  });

  it('sha256 gives the standard digest for one round and re-hashes the raw digest for more', async () => {
    await withEngine(async (run) => {
      // FIPS 180-2 test vector for "abc".
      const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
      expect(outputOf(await run('sha256', { data: 'abc', rounds: 1 }))).toEqual({ digest: abc, rounds: 1 });
      expect(outputOf(await run('sha256', { data: 'abc' }))).toEqual({ digest: abc, rounds: 1 });
      const twice = createHash('sha256').update(Buffer.from(abc, 'hex')).digest('hex');
      expect(outputOf(await run('sha256', { data: 'abc', rounds: 2 }))).toEqual({ digest: twice, rounds: 2 });
    });
  });

  it('count_primes counts the primes below the limit', async () => {
    await withEngine(async (run) => {
      expect(outputOf(await run('count_primes', { limit: 100 }))).toEqual({ limit: 100, count: 25 });
      expect(outputOf(await run('count_primes', { limit: 0 }))).toEqual({ limit: 0, count: 0 });
      expect(outputOf(await run('count_primes', { limit: 2 }))).toEqual({ limit: 2, count: 0 });
      expect(outputOf(await run('count_primes', { limit: 3 }))).toEqual({ limit: 3, count: 1 });
      expect(outputOf(await run('count_primes', { limit: 1_000_000 }))).toEqual({ limit: 1_000_000, count: 78_498 });
    });
  });

  it('text_stats counts lines, words, code points and UTF-8 bytes', async () => {
    await withEngine(async (run) => {
      expect(outputOf(await run('text_stats', { text: 'héllo  wörld\nsecond line 🎉\n' }))).toEqual({ lines: 2, words: 5, chars: 27, bytes: 32 });
      expect(outputOf(await run('text_stats', { text: 'a\nb' }))).toEqual({ lines: 2, words: 2, chars: 3, bytes: 3 });
      expect(outputOf(await run('text_stats', { text: '' }))).toEqual({ lines: 0, words: 0, chars: 0, bytes: 0 });
    });
  });

  it('rejects bad arguments with INVALID_TOOL_ARGS naming the field', async () => {
    const cases: [tool: string, args: unknown, field: string, mentions: string][] = [
      ['count_primes', { limit: 10_000_001 }, 'args.limit', 'must be <= 10000000'],
      ['count_primes', { limit: -1 }, 'args.limit', 'must be >= 0'],
      ['count_primes', { limit: 1.5 }, 'args.limit', 'must be integer'],
      ['sleep', { ms: '10' }, 'args.ms', 'must be integer'],
      ['sleep', { ms: 60_001 }, 'args.ms', 'must be <= 60000'],
      ['sha256', { data: 'abc', rounds: 0 }, 'args.rounds', 'must be >= 1'],
      ['sha256', { rounds: 1 }, 'args', "required property 'data'"],
      ['text_stats', { text: 5 }, 'args.text', 'must be string'],
      ['echo', { message: 'hi', extra: 1 }, 'args', '"additionalProperty":"extra"'],
    ];
    await withEngine(async (run) => {
      for (const [tool, args, field, mentions] of cases) {
        const result = await run(tool, args);
        expect(result.status, `${tool} ${JSON.stringify(args)}`).toBe('failed');
        const error = result.steps[0]!.error!;
        expect(error.code).toBe('INVALID_TOOL_ARGS');
        expect(error.details?.field).toBe(field);
        expect(error.message).toContain(mentions);
        expect(error.message).toContain(`tool ${tool}:`);
      }
    });
  });
});

import { describe, expect, it } from 'vitest';
import { Tool } from 'jaf-workflows';
import { decodeTask, encodeOutput, encodeTask } from '../../src/engine/worker-protocol.ts';
import { NonRetryableError, toStepError } from '../../src/errors.ts';

describe('tool argument validation', () => {
  const tool = new Tool({
    name: 'charge',
    parameters: { type: 'object', properties: { amount: { type: 'number', minimum: 0 } }, required: ['amount'], additionalProperties: false },
    execute: () => 1,
  });

  it('accepts valid arguments', () => {
    expect(tool.validateArgs({ amount: 3 })).toBeUndefined();
  });

  it('names the field and the rule', () => {
    expect(tool.validateArgs({ amount: -1 })).toMatchObject({ code: 'INVALID_TOOL_ARGS', retryable: false, message: 'tool charge: args.amount must be >= 0' });
    expect(tool.validateArgs({})?.message).toBe("tool charge: args must have required property 'amount'");
    expect(tool.validateArgs({ amount: 1, extra: true })?.message).toContain('"additionalProperty":"extra"');
  });
});

describe('outputs are normalised to JSON and bounded', () => {
  it('round-trips JSON values and turns Dates into strings', () => {
    const at = new Date('2026-01-02T03:04:05Z');
    expect(encodeOutput({ at, n: 1 }, 1000)).toEqual({ ok: true, output: { at: '2026-01-02T03:04:05.000Z', n: 1 }, json: '{"at":"2026-01-02T03:04:05.000Z","n":1}' });
    expect(encodeOutput(undefined, 10)).toEqual({ ok: true, output: undefined, json: undefined });
  });

  it('rejects what JSON cannot hold', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(encodeOutput(cyclic, 1000)).toMatchObject({ ok: false, error: { code: 'OUTPUT_NOT_SERIALIZABLE' } });
    expect(encodeOutput(() => 1, 1000)).toMatchObject({ ok: false, error: { code: 'OUTPUT_NOT_SERIALIZABLE' } });
    expect(encodeOutput(10n, 1000)).toMatchObject({ ok: false, error: { code: 'OUTPUT_NOT_SERIALIZABLE' } });
  });

  it('counts UTF-8 bytes against the limit', () => {
    expect(encodeOutput('é'.repeat(10), 24)).toMatchObject({ ok: true });
    expect(encodeOutput('é'.repeat(20), 24)).toMatchObject({ ok: false, error: { code: 'OUTPUT_TOO_LARGE', details: { bytes: 42, limit: 24 } } });
  });
});

describe('errors become data', () => {
  it('reads retryable and code from what was thrown, not its class', () => {
    expect(toStepError(new NonRetryableError('card declined', { code: 'CARD_DECLINED' }))).toEqual({ code: 'CARD_DECLINED', message: 'card declined', retryable: false });
    const foreign = Object.assign(new Error('from another realm'), { retryable: false });
    expect(toStepError(foreign)).toMatchObject({ code: 'TOOL_ERROR', retryable: false });
    expect(toStepError(new Error('boom'))).toEqual({ code: 'TOOL_ERROR', message: 'boom', retryable: true });
    expect(toStepError('plain string')).toMatchObject({ message: 'plain string', retryable: true });
    expect(toStepError({ weird: 1 })).toMatchObject({ message: 'non-Error value thrown: {"weird":1}' });
  });
});

describe('the task wire format', () => {
  it('round-trips every field, with separators and unicode inside ids and paths, args and userContext present or not', () => {
    const tasks = [
      { moduleUrl: 'file:///tools/a,b;c.js', args: {}, runId: 'r,1;x', stepPath: 'p;1/2,3:tool', attempt: 3, userContext: undefined, maxOutputBytes: 2048 },
      { moduleUrl: 'file:///t.js', args: { n: [1, 'two'] }, runId: 'ünï', stepPath: 'a/b', attempt: 1, userContext: { tenant: 't' }, maxOutputBytes: 1 },
      { moduleUrl: 'file:///t.js', args: {}, runId: '', stepPath: '', attempt: 12, userContext: null, maxOutputBytes: 64 * 1024 * 1024 },
    ];
    for (const task of tasks) expect(decodeTask(encodeTask(task))).toEqual(task);
    expect(typeof encodeTask(tasks[0]!)).toBe('string');
  });
});

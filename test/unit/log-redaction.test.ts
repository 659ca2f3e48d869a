/** The secrets pino censors in every logger this project builds (basePinoOptions). */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { basePinoOptions, WorkflowLogger } from '../../src/observability/workflow-logger.ts';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { stream, lines: () => text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('log redaction', () => {
  it('censors tokens, API keys and authorization headers at the top level and one level down', () => {
    const out = capture();
    const logger = pino(basePinoOptions('info'), out.stream);
    logger.info({ token: 's1', options: { token: 's2', apiKey: 's3' }, request: { headers: { authorization: 'Bearer s4' } }, call: { metadata: { authorization: 'Bearer s5' } } }, 'm');
    const [line] = out.lines();
    expect(line).toMatchObject({
      token: '[redacted]',
      options: { token: '[redacted]', apiKey: '[redacted]' },
      request: { headers: { authorization: '[redacted]' } },
      call: { metadata: { authorization: '[redacted]' } },
      service: 'jaf-workflows',
    });
    expect(JSON.stringify(out.lines())).not.toMatch(/s[1-5]/);
  });

  it('a WorkflowLogger over such a logger keeps the censoring in its run and step children', () => {
    const out = capture();
    const workflowLogger = new WorkflowLogger({ logger: pino(basePinoOptions('info'), out.stream) });
    workflowLogger.logError('provider failed', Object.assign(new Error('401'), { token: 'leaky' }), { runId: 'r1', workflowId: 'w1' });
    const text = JSON.stringify(out.lines());
    expect(text).toContain('r1');
    expect(text).not.toContain('leaky');
  });
});

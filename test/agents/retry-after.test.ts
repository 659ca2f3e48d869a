/** Retry-After: reading the headers, and the retry delay honouring it within an explicit cap. */
import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS, parseRetryAfter, type RetryPolicy } from 'jaf-workflows';
import { nextDelayMs } from '../../src/engine/retry.ts';

const policy: RetryPolicy = { maxAttempts: 5, initialDelayMs: 100, backoffCoefficient: 2, maxDelayMs: 500 };
const top = () => 0.999999;
const rateLimited = (retryAfterMs: unknown) => ({ code: 'MODEL_RATE_LIMITED', message: '429', retryable: true, details: { retryAfterMs } });

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const headers = (init: Record<string, string>) => new Headers(init);

  it('reads retry-after-ms first, then retry-after as seconds or an HTTP date', () => {
    expect(parseRetryAfter(headers({ 'retry-after-ms': '50', 'retry-after': '7' }), now)).toBe(50);
    expect(parseRetryAfter(headers({ 'retry-after-ms': '12.2' }), now)).toBe(13);
    expect(parseRetryAfter(headers({ 'retry-after': '1' }), now)).toBe(1000);
    expect(parseRetryAfter(headers({ 'retry-after': '0.5' }), now)).toBe(500);
    expect(parseRetryAfter(headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3000);
    expect(parseRetryAfter(headers({ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' }), now)).toBe(0);
  });

  it('is undefined when absent or unreadable', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter(headers({}), now)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after': '-3' }), now)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after-ms': 'x' }), now)).toBeUndefined();
  });
});

describe('nextDelayMs with details.retryAfterMs', () => {
  it('waits the larger of the backoff and the server’s Retry-After', () => {
    expect(nextDelayMs(policy, 1, top, rateLimited(1000))).toBe(1000);
    expect(nextDelayMs(policy, 3, top, rateLimited(10))).toBe(399);
    expect(nextDelayMs(policy, 1, () => 0, rateLimited(50))).toBe(50);
  });

  it(`caps the Retry-After at MAX_RETRY_AFTER_MS (${MAX_RETRY_AFTER_MS} ms), beyond the policy's maxDelayMs`, () => {
    expect(nextDelayMs(policy, 1, top, rateLimited(3_600_000))).toBe(MAX_RETRY_AFTER_MS);
    expect(nextDelayMs(policy, 1, top, rateLimited(2_000))).toBe(2_000);
  });

  it('ignores a retryAfterMs that is not a usable number, and errors without one', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '1000', null]) expect(nextDelayMs(policy, 1, top, rateLimited(bad))).toBe(99);
    expect(nextDelayMs(policy, 1, top, { code: 'TOOL_ERROR', message: 'x', retryable: true })).toBe(99);
    expect(nextDelayMs(policy, 1, top)).toBe(99);
  });
});

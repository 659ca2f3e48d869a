import { describe, expect, it } from 'vitest';
import { nextDelayMs, shouldRetry } from '../../src/engine/retry.ts';
import type { RetryPolicy } from 'jaf-workflows';

const policy: RetryPolicy = { maxAttempts: 5, initialDelayMs: 100, backoffCoefficient: 2, maxDelayMs: 500 };
const retryable = { code: 'TOOL_ERROR', message: 'x', retryable: true };

describe('retry policy', () => {
  it('grows exponentially up to the cap (jitter at its maximum)', () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4, 5].map((n) => nextDelayMs(policy, n, top))).toEqual([99, 199, 399, 499, 499]);
  });

  it('uses full jitter: zero random gives zero delay', () => {
    expect(nextDelayMs(policy, 3, () => 0)).toBe(0);
  });

  it('retries only retryable errors while attempts remain', () => {
    expect(shouldRetry(retryable, policy, 4)).toBe(true);
    expect(shouldRetry(retryable, policy, 5)).toBe(false);
    expect(shouldRetry({ ...retryable, retryable: false }, policy, 1)).toBe(false);
  });
});

describe('run ids', () => {
  it('are UUIDv7: time-ordered, unique, well-formed', async () => {
    const { newRunId } = await import('../../src/ids.ts');
    const a = newRunId(1_700_000_000_000);
    const b = newRunId(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a < b).toBe(true);
    expect(a.slice(0, 13)).toBe('018bcfe5-6800');
    expect(new Set(Array.from({ length: 1000 }, () => newRunId())).size).toBe(1000);
  });
});

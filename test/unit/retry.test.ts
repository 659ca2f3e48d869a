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

import type { RetryPolicy } from '../definition/types.ts';
import type { StepError } from '../errors.ts';

/** Whether a failed attempt is tried again: only retryable errors, and only while attempts remain. */
export function shouldRetry(error: StepError, policy: RetryPolicy, attemptsMade: number): boolean {
  return error.retryable && attemptsMade < policy.maxAttempts;
}

/**
 * Delay before the next attempt: exponential backoff with full jitter, capped.
 * `attemptsMade` is 1 after the first failure. `random` returns [0, 1).
 */
export function nextDelayMs(policy: RetryPolicy, attemptsMade: number, random: () => number): number {
  const exponential = policy.initialDelayMs * policy.backoffCoefficient ** Math.max(0, attemptsMade - 1);
  const ceiling = Math.min(policy.maxDelayMs, exponential);
  return Math.floor(random() * ceiling);
}

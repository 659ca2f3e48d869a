import type { RetryPolicy } from '../definition/types.ts';
import type { StepError } from '../errors.ts';

/**
 * The longest wait a failed attempt's `details.retryAfterMs` (a model endpoint's Retry-After) can impose:
 * 5 minutes. A server asking for longer gets retried at this cap rather than parking the step for hours.
 */
export const MAX_RETRY_AFTER_MS = 300_000;

/** Whether a failed attempt is tried again: only retryable errors, and only while attempts remain. */
export function shouldRetry(error: StepError, policy: RetryPolicy, attemptsMade: number): boolean {
  return error.retryable && attemptsMade < policy.maxAttempts;
}

/**
 * Delay before the next attempt: exponential backoff with full jitter, capped by `policy.maxDelayMs`.
 * When the failed attempt's error carries `details.retryAfterMs` (the server said when to come back),
 * the delay is at least that, capped by MAX_RETRY_AFTER_MS.
 * `attemptsMade` is 1 after the first failure. `random` returns [0, 1).
 */
export function nextDelayMs(policy: RetryPolicy, attemptsMade: number, random: () => number, error?: StepError): number {
  const exponential = policy.initialDelayMs * policy.backoffCoefficient ** Math.max(0, attemptsMade - 1);
  const ceiling = Math.min(policy.maxDelayMs, exponential);
  const backoff = Math.floor(random() * ceiling);
  const retryAfter = retryAfterMsOf(error);
  return retryAfter === undefined ? backoff : Math.max(backoff, Math.min(retryAfter, MAX_RETRY_AFTER_MS));
}

/** `details.retryAfterMs` when it is a usable number of milliseconds (errors cross the store as JSON). */
export function retryAfterMsOf(error: StepError | undefined): number | undefined {
  const value = error?.details?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined;
}

/** Sizing the CPU-heavy tool (count_primes) so one call costs about a target number of milliseconds. */
import { performance } from 'node:perf_hooks';
import countPrimes from '../workers/tools/count-primes.ts';
import { summarize } from './stats.ts';

function medianCallMs(limit: number, samples = 3): number {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    countPrimes({ limit });
    times.push(performance.now() - started);
  }
  return summarize(times).median;
}

/**
 * The count_primes limit whose call takes about `targetMs` on this thread (the pool threads run the same
 * code on the same cores). Trial division costs ~limit^1.5, hence the 2/3 power in each correction.
 */
export function calibrateCountPrimes(targetMs: number): { limit: number; ms: number } {
  let limit = 100_000;
  let ms = medianCallMs(limit);
  for (let i = 0; i < 5; i++) {
    limit = Math.min(10_000_000, Math.max(10_000, Math.round(limit * (targetMs / ms) ** (2 / 3))));
    ms = medianCallMs(limit);
    if (Math.abs(ms - targetMs) / targetMs < 0.05) break;
  }
  return { limit, ms };
}

/**
 * Built-in pool tool `count_primes`: how many primes are below `limit`, by trial division. Deliberately
 * pure-JS arithmetic with no allocation, so its cost is CPU only and scales evenly across pool threads
 * (a sieve would be faster but memory-bound).
 */
const maxLimit = 10_000_000;

export default function countPrimes(args: { limit: number }): { limit: number; count: number } {
  const limit = Math.min(Math.max(0, Math.trunc(args.limit)), maxLimit);
  let count = limit > 2 ? 1 : 0; // 2, the only even prime
  for (let n = 3; n < limit; n += 2) if (isOddPrime(n)) count++;
  return { limit, count };
}

function isOddPrime(n: number): boolean {
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

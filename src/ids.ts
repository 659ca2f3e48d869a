import { randomUUID } from 'node:crypto';

/**
 * A new run id: a UUID version 7 (RFC 9562), whose first 48 bits are the creation time in ms. Runs
 * created together get neighbouring ids, so the store writes their rows into neighbouring pages
 * instead of scattering one page per run across the file (a 64-run group commit touched ~64 pages
 * with random ids).
 */
export function newRunId(now: number = Date.now()): string {
  const random = randomUUID();
  const time = now.toString(16).padStart(12, '0').slice(-12);
  // time (8-4) | version 7 + 12 random bits | variant (kept from the v4 UUID) + random
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15, 18)}-${random.slice(19)}`;
}

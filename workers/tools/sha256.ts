/**
 * Built-in pool tool `sha256`: the SHA-256 of `data` (UTF-8), hashed again `rounds` - 1 times over the
 * previous raw digest. CPU-heavy on purpose (key-stretching style); rounds = 1 is the plain digest.
 */
import { createHash } from 'node:crypto';

const maxRounds = 10_000_000;

export default function sha256(args: { data: string; rounds?: number }): { digest: string; rounds: number } {
  const rounds = Math.min(Math.max(1, Math.trunc(args.rounds ?? 1)), maxRounds);
  let digest = createHash('sha256').update(args.data, 'utf8').digest();
  for (let i = 1; i < rounds; i++) digest = createHash('sha256').update(digest).digest();
  return { digest: digest.toString('hex'), rounds };
}

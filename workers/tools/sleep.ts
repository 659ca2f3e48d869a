/** Built-in pool tool `sleep`: waits `ms` milliseconds on its pool thread, then reports how long it slept. */
import { setTimeout as delay } from 'node:timers/promises';

// The schema caps `ms` too; this keeps the module safe when called with unchecked arguments.
const maxMs = 60_000;

export default async function sleep(args: { ms: number }): Promise<{ sleptMs: number }> {
  const ms = Math.min(Math.max(0, Math.trunc(args.ms)), maxMs);
  await delay(ms);
  return { sleptMs: ms };
}

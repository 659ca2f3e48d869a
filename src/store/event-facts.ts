/** What a store needs to know about an event, the same for every store. */
import type { RunEvent, RunStatus } from '../engine/events.ts';

/** The step path whose final result this event records (completed or skipped), if any. */
export function finalResultPath(event: RunEvent): string | undefined {
  return event.type === 'step_completed' || event.type === 'step_skipped' ? event.path : undefined;
}

export function runStatusAfter(status: RunStatus, event: RunEvent): RunStatus {
  switch (event.type) {
    case 'run_started':
      return 'running';
    case 'run_completed':
      return 'completed';
    case 'run_failed':
      return 'failed';
    case 'run_cancelled':
      return 'cancelled';
    default:
      return status;
  }
}

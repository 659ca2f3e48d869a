/**
 * A run as the fold of its events. `nextStepRecord` and `nextRunStatus` are the pure transitions and
 * reject illegal moves (a completed step starting again, a gap in seq); `RunProjection` keeps the
 * folded state in maps so that applying an event costs O(1).
 */
import type { StepKind } from '../definition/types.ts';
import type { StepError } from '../errors.ts';
import type { RunEvent, RunStatus, StepResultData, StepStatus } from './events.ts';
import { StepResult } from './results.ts';

export interface StepRecord {
  readonly path: string;
  readonly stepId: string;
  readonly kind: StepKind;
  readonly parent: string | undefined;
  readonly status: StepStatus;
  readonly attempts: number;
  readonly result: StepResultData | undefined;
}

export class InvariantViolation extends Error {
  readonly code = 'INTERNAL';
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

type StepEvent = Extract<RunEvent, { path: string }>;

/** Completed and skipped results are committed: a step with such a result never runs again. */
export function isCommitted(status: StepStatus): boolean {
  return status === 'completed' || status === 'skipped';
}

export function nextStepRecord(prev: StepRecord | undefined, event: StepEvent): StepRecord {
  switch (event.type) {
    case 'step_started': {
      if (prev !== undefined && isCommitted(prev.status)) {
        throw new InvariantViolation(`step ${event.path} started again after it was ${prev.status} (seq ${event.seq})`);
      }
      if (prev !== undefined && event.attempt !== prev.attempts + 1) {
        throw new InvariantViolation(`step ${event.path} attempt ${event.attempt} follows attempt ${prev.attempts} (seq ${event.seq})`);
      }
      return { path: event.path, stepId: event.stepId, kind: event.kind, parent: event.parent, status: 'running', attempts: event.attempt, result: undefined };
    }
    case 'step_retrying':
    case 'step_output_delta':
    case 'model_responded':
      if (prev === undefined || prev.status !== 'running') {
        throw new InvariantViolation(`step ${event.path}: ${event.type} while ${prev?.status ?? 'unknown'} (seq ${event.seq})`);
      }
      return prev;
    case 'step_completed':
    case 'step_failed':
    case 'step_skipped':
    case 'step_cancelled': {
      if (prev !== undefined && isCommitted(prev.status)) {
        throw new InvariantViolation(`step ${event.path} finished twice (seq ${event.seq})`);
      }
      const { result } = event;
      return { path: event.path, stepId: result.stepId, kind: result.kind, parent: event.parent, status: result.status, attempts: result.attempts, result };
    }
    default:
      return assertNever(event);
  }
}

export function nextRunStatus(status: RunStatus, event: RunEvent): RunStatus {
  switch (event.type) {
    case 'run_started':
      if (status !== 'pending') throw new InvariantViolation(`run started twice (seq ${event.seq})`);
      return 'running';
    case 'run_completed':
    case 'run_failed':
    case 'run_cancelled':
      if (status !== 'running') throw new InvariantViolation(`run finished while ${status} (seq ${event.seq})`);
      return event.type === 'run_completed' ? 'completed' : event.type === 'run_failed' ? 'failed' : 'cancelled';
    default:
      if (status !== 'running') throw new InvariantViolation(`${event.type} while the run is ${status} (seq ${event.seq})`);
      return status;
  }
}

export class RunProjection {
  readonly runId: string;
  status: RunStatus = 'pending';
  lastSeq = 0;
  workflowId = '';
  totalSteps = 0;
  startedAt: number | undefined;
  endedAt: number | undefined;
  error: (StepError & { readonly stepPath?: string }) | undefined;
  readonly #steps = new Map<string, StepRecord>();
  readonly #children = new Map<string, string[]>();
  readonly #topLevel: string[] = [];

  constructor(runId: string) {
    this.runId = runId;
  }

  apply(event: RunEvent): void {
    if (event.seq !== this.lastSeq + 1) throw new InvariantViolation(`event seq ${event.seq} after ${this.lastSeq}: seq must have no gaps`);
    this.status = nextRunStatus(this.status, event);
    this.lastSeq = event.seq;
    switch (event.type) {
      case 'run_started':
        this.workflowId = event.workflowId;
        this.totalSteps = event.totalSteps;
        this.startedAt = event.at;
        return;
      case 'run_completed':
      case 'run_failed':
      case 'run_cancelled':
        this.endedAt = event.at;
        this.error = event.error;
        return;
      default: {
        const prev = this.#steps.get(event.path);
        const next = nextStepRecord(prev, event);
        this.#steps.set(event.path, next);
        if (prev === undefined && next.parent !== undefined) {
          const siblings = this.#children.get(next.parent);
          if (siblings === undefined) this.#children.set(next.parent, [event.path]);
          else siblings.push(event.path);
        }
        if (next.parent === undefined && next.result !== undefined) this.#topLevel.push(event.path);
      }
    }
  }

  record(path: string): StepRecord | undefined {
    return this.#steps.get(path);
  }

  /** The public result of a finished step, with its children's results. */
  stepResult(path: string): StepResult {
    const record = this.#steps.get(path);
    if (record?.result === undefined) throw new InvariantViolation(`no result recorded for step ${path}`);
    const childPaths = this.#children.get(path);
    if (childPaths === undefined) return new StepResult(record.result);
    const children: StepResult[] = [];
    for (const child of childPaths) if (this.#steps.get(child)?.result !== undefined) children.push(this.stepResult(child));
    return new StepResult(record.result, children);
  }

  topLevelResults(): StepResult[] {
    return this.#topLevel.map((path) => this.stepResult(path));
  }
}

function assertNever(value: never): never {
  throw new InvariantViolation(`unhandled event: ${JSON.stringify(value)}`);
}

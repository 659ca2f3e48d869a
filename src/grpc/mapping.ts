/**
 * Engine and store data -> WorkflowService messages (the plain objects @grpc/proto-loader serializes,
 * with the loader options of proto.ts: camelCase fields, enums as their names, int64 as strings).
 */
import type { StepKind } from '../definition/types.ts';
import type { RunEvent, RunFinishedEvent, RunStartedEvent, RunStatus, StepResultData } from '../engine/events.ts';
import { RunProjection } from '../engine/run-projection.ts';
import type { StepError } from '../errors.ts';
import type { RunRecord } from '../store/run-store.ts';
import type { Tool } from '../tools/tool.ts';
import { toProtoStruct, toProtoTimestamp, toProtoValue, type ProtoStruct } from './proto.ts';

export type Message = Record<string, unknown>;

export function workflowName(workflowId: string): string {
  return `workflows/${workflowId}`;
}

export function runName(runId: string): string {
  return `runs/${runId}`;
}

export function runStatusToProto(status: RunStatus): string {
  return `RUN_STATUS_${status.toUpperCase()}`;
}

export function stepKindToProto(kind: StepKind): string {
  return `STEP_KIND_${kind.toUpperCase()}`;
}

/** A JSON object as a Struct; anything else (undefined, an array, a scalar) as unset. */
export function structOrUnset(value: unknown): ProtoStruct | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  return toProtoStruct(value as Record<string, unknown>);
}

export function stepErrorToProto(error: StepError | undefined): Message | undefined {
  if (error === undefined) return undefined;
  const message: Message = { code: error.code, message: error.message, retryable: error.retryable };
  const details = structOrUnset(error.details);
  if (details !== undefined) message.details = details;
  return message;
}

export function stepResultToProto(result: StepResultData): Message {
  const message: Message = {
    stepId: result.stepId,
    path: result.path,
    kind: stepKindToProto(result.kind),
    status: `STEP_STATUS_${result.status.toUpperCase()}`,
    executionTimeMs: result.executionTimeMs,
    attempts: result.attempts,
  };
  if (result.output !== undefined) message.output = toProtoValue(result.output);
  const error = stepErrorToProto(result.error);
  if (error !== undefined) message.error = error;
  const metadata = structOrUnset(result.metadata);
  if (metadata !== undefined) message.metadata = metadata;
  return message;
}

export function runEventToProto(event: RunEvent): Message {
  const base: Message = { seq: String(event.seq), run: runName(event.runId), time: toProtoTimestamp(event.at) };
  switch (event.type) {
    case 'run_started':
      return {
        ...base,
        runStarted: {
          workflow: workflowName(event.workflowId),
          definitionHash: event.definitionHash,
          displayName: event.workflowName,
          totalSteps: event.totalSteps,
          ...inputToProto(event),
          tokenBudget: String(event.tokenBudget ?? 0),
        },
      };
    case 'step_started':
      return {
        ...base,
        stepStarted: { path: event.path, parentPath: event.parent ?? '', stepId: event.stepId, kind: stepKindToProto(event.kind), attempt: event.attempt },
      };
    case 'step_retrying':
      return {
        ...base,
        stepRetrying: {
          path: event.path,
          attempt: event.attempt,
          error: stepErrorToProto(event.error),
          delayMs: event.delayMs,
          reason: event.reason === 'retry_policy' ? 'RETRY_REASON_RETRY_POLICY' : 'RETRY_REASON_ERROR_HANDLER',
        },
      };
    case 'step_completed':
    case 'step_failed':
    case 'step_skipped':
    case 'step_cancelled':
      return { ...base, stepFinished: stepResultToProto(event.result) };
    case 'step_output_delta':
      return { ...base, stepOutputDelta: { path: event.path, attempt: event.attempt, turn: event.turn, agent: event.agent, text: event.text } };
    case 'model_responded':
      return {
        ...base,
        modelResponded: { path: event.path, attempt: event.attempt, turn: event.turn, agent: event.agent, model: event.model ?? '', response: toProtoStruct({ ...event.response }) },
      };
    case 'run_completed':
    case 'run_failed':
    case 'run_cancelled': {
      const status = finishedStatus(event);
      return {
        ...base,
        runFinished: { status: runStatusToProto(status), error: stepErrorToProto(stripStepPath(event.error)), errorStepPath: event.error?.stepPath ?? '' },
      };
    }
  }
}

/** True for run_completed / run_failed / run_cancelled. */
export function isTerminalEvent(event: RunEvent): boolean {
  return event.type === 'run_completed' || event.type === 'run_failed' || event.type === 'run_cancelled';
}

/**
 * GetRun's Run: from its store record and its whole history (folded with RunProjection), with the
 * results of finished steps in the order they (last) finished.
 */
export function runToProto(record: RunRecord, events: readonly RunEvent[]): Message {
  const projection = new RunProjection(record.runId);
  const finishedOrder = new Map<string, StepResultData>();
  let started: RunStartedEvent | undefined;
  for (const event of events) {
    projection.apply(event);
    if (event.type === 'run_started') started = event;
    else if ('result' in event) {
      // A step finishing again (after a handler retry) moves to where it last finished.
      finishedOrder.delete(event.path);
      finishedOrder.set(event.path, event.result);
    }
  }
  return runMessage(record, {
    // The store's record may run ahead of the events read; the projection is what the events say.
    status: events.length > 0 ? projection.status : record.status,
    lastSeq: projection.lastSeq,
    started,
    totalSteps: started?.totalSteps ?? projection.totalSteps,
    finishedAt: projection.endedAt ?? record.finishedAt,
    error: projection.error,
    stepResults: [...finishedOrder.values()],
  });
}

/**
 * ListRuns' Run: from the record and the run's first and last events only (its input, and how it
 * ended), so a page costs two rows per run however long each history is. No step results.
 */
export function runSummaryToProto(record: RunRecord, ends: { readonly first: RunEvent; readonly last: RunEvent } | undefined): Message {
  const started = ends?.first.type === 'run_started' ? ends.first : undefined;
  const last = ends?.last;
  const finished = last !== undefined && isTerminalEvent(last) ? (last as RunFinishedEvent) : undefined;
  return runMessage(record, {
    status: finished === undefined ? record.status : finishedStatus(finished),
    lastSeq: last?.seq ?? 0,
    started,
    totalSteps: started?.totalSteps ?? 0,
    finishedAt: finished?.at ?? record.finishedAt,
    error: finished?.error,
    stepResults: [],
  });
}

interface RunFacts {
  readonly status: RunStatus;
  readonly lastSeq: number;
  readonly started: RunStartedEvent | undefined;
  readonly totalSteps: number;
  readonly finishedAt: number | undefined;
  readonly error: (StepError & { readonly stepPath?: string }) | undefined;
  readonly stepResults: readonly StepResultData[];
}

function runMessage(record: RunRecord, facts: RunFacts): Message {
  const message: Message = {
    name: runName(record.runId),
    runId: record.runId,
    workflow: workflowName(record.workflowId),
    definitionHash: record.definitionHash,
    status: runStatusToProto(facts.status),
    createTime: toProtoTimestamp(record.createdAt),
    lastSeq: String(Math.max(facts.lastSeq, 0)),
    totalSteps: facts.totalSteps,
    errorStepPath: facts.error?.stepPath ?? '',
    stepResults: facts.stepResults.map(stepResultToProto),
  };
  if (facts.finishedAt !== undefined) message.finishTime = toProtoTimestamp(facts.finishedAt);
  if (facts.started !== undefined) Object.assign(message, inputToProto(facts.started));
  const error = stepErrorToProto(stripStepPath(facts.error));
  if (error !== undefined) message.error = error;
  return message;
}

function finishedStatus(event: RunFinishedEvent): RunStatus {
  return event.type === 'run_completed' ? 'completed' : event.type === 'run_failed' ? 'failed' : 'cancelled';
}

export function toolToProto(tool: Tool): Message {
  const message: Message = { name: tool.name, description: tool.description, runsInPool: tool.runsInPool };
  const schema = structOrUnset(tool.parameters);
  if (schema !== undefined) message.parametersJsonSchema = schema;
  return message;
}

function inputToProto(event: RunStartedEvent): Message {
  const out: Message = {};
  const variables = structOrUnset(event.input.variables);
  const metadata = structOrUnset(event.input.metadata);
  const userContext = structOrUnset(event.input.userContext);
  if (variables !== undefined) out.variables = variables;
  if (metadata !== undefined) out.metadata = metadata;
  if (userContext !== undefined) out.userContext = userContext;
  return out;
}

function stripStepPath(error: (StepError & { readonly stepPath?: string }) | undefined): StepError | undefined {
  if (error === undefined) return undefined;
  const { stepPath: _stepPath, ...rest } = error;
  return rest;
}

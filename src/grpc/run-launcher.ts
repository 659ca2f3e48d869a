/**
 * Starting runs for StartRun and ExecuteWorkflow: builds the run's context from the request, starts it
 * on the engine, answers once its run_started event is stored, and keeps each running run's
 * AbortController for CancelRun.
 *
 * request_id idempotency (AIP-155) is durable: the request_id, a fingerprint of the request and the run
 * id chosen for it are stored before the run starts, so a retry after a crash or a restart finds the
 * same run (or starts it under the same id if it never got going), and the same request_id with other
 * content is refused with REQUEST_ID_REUSED.
 */
import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';
import { WorkflowContext } from '../context.ts';
import type { WorkflowEngine } from '../engine/engine.ts';
import type { RunEvent } from '../engine/events.ts';
import { newRunId } from '../ids.ts';
import { Limits } from '../limits.ts';
import type { WorkflowLogger } from '../observability/workflow-logger.ts';
import type { RunStore } from '../store/run-store.ts';
import { CoordinatorError, jsonInput, resourceId, RUN_ID_PATTERN, type AnyRequest } from './requests.ts';
import { CoordinatorErrorCode } from './status.ts';
import type { WorkflowCatalog } from './workflow-catalog.ts';

export const REQUEST_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

export interface LauncherOptions {
  readonly engine: WorkflowEngine;
  readonly store: RunStore;
  readonly catalog: WorkflowCatalog;
  readonly logger: WorkflowLogger | undefined;
  /** How long a start waits for run_started to be stored, ms. */
  readonly startTimeoutMs: number;
}

/** Hears every committed event of a run this call launched, in seq order, from run_started on. */
export type RunObserver = (event: RunEvent) => void;

/** What a start found: the run's id, and, when this call launched it, its execution (which the observer follows). */
export interface StartedRun {
  readonly runId: string;
  /** Set when this call launched the run (so an observer hears all its events); settles when the run ends. */
  readonly execution: Promise<unknown> | undefined;
}

export class RunLauncher {
  readonly #options: LauncherOptions;
  /** Runs started here and not settled: their AbortController, for CancelRun. */
  /** Runs launched here and not finished: their controller, and their start (run_started stored). */
  readonly #active = new Map<string, { readonly controller: AbortController; readonly started: Promise<string> }>();
  /** Starts in flight by request_id: a concurrent duplicate joins the first instead of racing it. */
  readonly #starting = new Map<string, { readonly fingerprint: string; readonly runId: Promise<string> }>();
  /** The createdAt of the last request_id claimed here: each claim gets its own, so a claim can tell whether it stored the record. */
  #lastClaimAt = 0;

  constructor(options: LauncherOptions) {
    this.#options = options;
  }

  /**
   * Starts the run a StartRunRequest describes (or finds the one its request_id already started);
   * resolves once its run_started is stored. `observer` hears the run's events only when this call
   * launched it (`execution` set): a run found by its request_id is the caller's to watch from the store.
   */
  start(request: AnyRequest, observer?: RunObserver): Promise<StartedRun> {
    const requestId = typeof request.requestId === 'string' ? request.requestId : '';
    if (requestId === '') {
      // A fresh id (time + 74 random bits) needs no look-up: a collision is refused by the store anyway.
      const explicit = this.#explicitRunId(request);
      return this.#launch(request, explicit ?? newRunId(), explicit !== undefined, observer);
    }
    if (!REQUEST_ID_PATTERN.test(requestId)) {
      return Promise.reject(new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, 'request_id must be 1-128 printable ASCII characters', 'request_id'));
    }
    const fingerprint = requestFingerprint(request);
    const inFlight = this.#starting.get(requestId);
    if (inFlight !== undefined) {
      // A joiner did not launch the run: it watches it like any other.
      return inFlight.fingerprint === fingerprint ? inFlight.runId.then((runId) => ({ runId, execution: undefined })) : Promise.reject(reused(requestId));
    }
    const started = this.#startOnce(request, requestId, fingerprint, observer);
    const runId = started.then((run) => run.runId);
    this.#starting.set(requestId, { fingerprint, runId });
    const forget = () => this.#starting.delete(requestId);
    runId.then(forget, forget);
    return started;
  }

  /** The controller of a run executing here, if any. */
  controller(runId: string): AbortController | undefined {
    return this.#active.get(runId)?.controller;
  }

  async #startOnce(request: AnyRequest, requestId: string, fingerprint: string, observer: RunObserver | undefined): Promise<StartedRun> {
    const { store } = this.#options;
    const explicit = this.#explicitRunId(request);
    const mine = explicit ?? newRunId();
    this.#lastClaimAt = Math.max(Date.now(), this.#lastClaimAt + 1);
    const createdAt = this.#lastClaimAt;
    const claimed = await store.claimRunRequest({ requestId, fingerprint, runId: mine, createdAt });
    if (claimed.fingerprint !== fingerprint) throw reused(requestId);
    // With a client-chosen run_id an earlier claim names the same run id: its createdAt tells it apart.
    const earlier = claimed.runId !== mine || claimed.createdAt !== createdAt;
    if (earlier) {
      // Still starting here (an earlier call timed out waiting for it): this call waits for that start.
      const launching = this.#active.get(claimed.runId);
      if (launching !== undefined) return { runId: await this.#startedInTime(launching.started), execution: undefined };
      if ((await store.getRun(claimed.runId)) !== undefined) return { runId: claimed.runId, execution: undefined };
    }
    // Ours, or claimed by a coordinator that stopped before the run started: start it under the claimed id.
    try {
      return await this.#launch(request, claimed.runId, !earlier && explicit !== undefined, observer);
    } catch (err) {
      // A start that timed out goes on (and may yet start): the request_id keeps naming its run.
      if (!(err instanceof StartTimeoutError)) await store.releaseRunRequest(requestId, claimed.runId).catch(() => {});
      throw err;
    }
  }

  #explicitRunId(request: AnyRequest): string | undefined {
    if (typeof request.runId !== 'string' || request.runId === '') return undefined;
    if (!RUN_ID_PATTERN.test(request.runId)) {
      throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `run_id must be 1-128 characters of letters, digits, '.', '_', '~' or '-'`, 'run_id');
    }
    return request.runId;
  }

  async #launch(request: AnyRequest, runId: string, checkUnused: boolean, observer: RunObserver | undefined): Promise<StartedRun> {
    const { engine, store, catalog } = this.#options;
    const { workflow } = await catalog.resolve(resourceId(request.workflow, 'workflows', 'workflow'), typeof request.definitionHash === 'string' ? request.definitionHash : undefined);
    if (checkUnused && (this.#active.has(runId) || (await store.getRun(runId)) !== undefined)) {
      throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_EXISTS, `run ${runId} already exists`, 'run_id');
    }
    const ctx = new WorkflowContext({
      workflowId: workflow.id,
      variables: jsonInput(request.variables, 'variables') ?? {},
      metadata: jsonInput(request.metadata, 'metadata') ?? {},
      userContext: jsonInput(request.userContext, 'user_context'),
    });
    const modelOptions = modelOptionsOf(request);
    const replayFrom = modelOptions.replayModelResponsesFrom;
    if (replayFrom !== undefined && (await store.getRun(replayFrom)) === undefined) {
      throw new CoordinatorError(CoordinatorErrorCode.RUN_NOT_FOUND, `replay_model_responses_from: run ${replayFrom} does not exist`, 'replay_model_responses_from');
    }
    // Checked again after the awaits above: a concurrent start of the same run_id may have launched it meanwhile.
    if (checkUnused && this.#active.has(runId)) {
      throw new CoordinatorError(CoordinatorErrorCode.RUN_ALREADY_EXISTS, `run ${runId} already exists`, 'run_id');
    }
    const controller = new AbortController();
    let onStarted!: (runId: string) => void;
    let onFailed!: (err: unknown) => void;
    const started = new Promise<string>((resolve, reject) => {
      onStarted = resolve;
      onFailed = reject;
    });
    started.catch(() => {}); // a caller that timed out no longer listens
    const launching = { controller, started };
    this.#active.set(runId, launching);
    const onEvent = (event: RunEvent): void => {
      if (event.type === 'run_started') onStarted(event.runId);
      observer?.(event);
    };
    let execution: Promise<unknown>;
    try {
      execution = engine.executeWorkflow(workflow, ctx, { runId, signal: controller.signal, onEvent, ...modelOptions });
    } catch (err) {
      this.#active.delete(runId);
      throw err;
    }
    execution.then(
      () => onStarted(runId),
      (err: unknown) => {
        onFailed(err);
        this.#options.logger?.logError('run failed to execute', err, { runId, workflowId: workflow.id });
      },
    );
    void execution
      .finally(() => {
        if (this.#active.get(runId) === launching) this.#active.delete(runId);
      })
      .catch(() => {});
    return { runId: await this.#startedInTime(started), execution };
  }

  /** The run id once its run_started is stored, or StartTimeoutError after startTimeoutMs (the start goes on). */
  async #startedInTime(started: Promise<string>): Promise<string> {
    const { startTimeoutMs } = this.#options;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new StartTimeoutError(CoordinatorErrorCode.SHUTTING_DOWN, `the run did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
    });
    try {
      return await Promise.race([started, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** StartRun's model options: a run token budget, recording, replay from a recorded run. */
function modelOptionsOf(request: AnyRequest): { tokenBudget?: number; recordModelResponses?: boolean; replayModelResponsesFrom?: string } {
  const budget = Number(request.tokenBudget ?? 0);
  if (!Number.isSafeInteger(budget) || budget < 0 || budget > Limits.maxTokenBudget) {
    throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `token_budget must be an integer from 0 (unlimited) to ${Limits.maxTokenBudget}`, 'token_budget');
  }
  const replay = typeof request.replayModelResponsesFrom === 'string' && request.replayModelResponsesFrom !== '' ? request.replayModelResponsesFrom : undefined;
  return {
    ...(budget > 0 ? { tokenBudget: budget } : {}),
    ...(request.recordModelResponses === true ? { recordModelResponses: true } : {}),
    ...(replay === undefined ? {} : { replayModelResponsesFrom: resourceId(replay, 'runs', 'replay_model_responses_from') }),
  };
}

/** The run was launched but its run_started was not stored in time; it keeps going. */
class StartTimeoutError extends CoordinatorError {}

function reused(requestId: string): CoordinatorError {
  return new CoordinatorError(CoordinatorErrorCode.REQUEST_ID_REUSED, `request_id ${requestId} was used with a different request`, 'request_id');
}

/** What identifies a StartRun request's content (everything but the request_id). */
/** JSON with object keys sorted, so that equal values always read the same. */
const canonicalJson = configure({ deterministic: true, circularValue: Error, bigint: false });

/**
 * What makes two StartRun requests the same, whatever order their Struct fields were encoded in
 * (protobuf leaves map order to the encoder): the Structs as JSON with sorted keys.
 */
function requestFingerprint(request: AnyRequest): string {
  const content = canonicalJson([
    request.workflow,
    request.definitionHash ?? '',
    // Absent and empty are the same to the run (its context starts with {}).
    jsonInput(request.variables, 'variables') ?? {},
    jsonInput(request.metadata, 'metadata') ?? {},
    jsonInput(request.userContext, 'user_context') ?? null,
    request.runId ?? '',
    String(request.tokenBudget ?? 0),
    request.recordModelResponses === true,
    request.replayModelResponsesFrom ?? '',
  ]);
  return createHash('sha256').update(content ?? '').digest('hex');
}

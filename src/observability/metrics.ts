/**
 * Prometheus metrics of the coordinator (ecosystem.md §3), on a Registry of their own so tests and
 * embedders never share the process-global one. Runs, steps and retries are folded from committed
 * RunEvents; pool and run gauges are read at scrape time from source functions; gRPC, stream and
 * model figures are recorded by whoever sees them (an interceptor, the watch handler, a provider).
 *
 * Labels are bounded: never run ids, step ids, paths or workflow ids. Names that come from
 * registrations (models, agents, gRPC services and methods) are capped per label (`maxLabelValues`);
 * values past the cap, or longer than `maxLabelValueLength`, are reported as `other`.
 *
 * Recording never throws: a metric must not fail a run or a call. Bad input (a negative duration, an
 * unknown event type) is dropped and counted in `jaf_metrics_invalid_observations_total{method}`.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { assertNever, type StepKind } from '../definition/types.ts';
import type { FinishedStepStatus, RunEvent, StepFinishedEvent } from '../engine/events.ts';
import type { PoolStats } from '../engine/pool-executor.ts';
import { isNonNegative, registerPoolMetrics } from './pool-metrics.ts';

/** Seconds; from 1 ms to 10 min, since CPU-heavy steps and queue waits run for minutes (§3.2). */
export const STEP_DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Seconds; runs outlive their steps, so up to an hour. */
export const RUN_DURATION_BUCKETS: readonly number[] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds; unary calls are fast, streams (WatchRun) last as long as the run they watch. */
export const GRPC_HANDLING_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const MetricsLimits = {
  /** Distinct values one open-ended label (model, agent, grpc_service, grpc_method) may take. */
  defaultMaxLabelValues: 256,
  maxLabelValues: 10_000,
  /** Characters of one label value; longer values are reported as `other`. */
  maxLabelValueLength: 128,
  /** Runs whose start time and step kinds are remembered (for run durations and retry kinds). */
  defaultMaxTrackedRuns: 100_000,
  maxTrackedRuns: 10_000_000,
  /** Running steps remembered across all tracked runs (for the `kind` label of retries). */
  defaultMaxTrackedSteps: 100_000,
  maxTrackedSteps: 10_000_000,
} as const;

/** The label value that stands for every value past a label's cap. */
export const OVERFLOW_LABEL_VALUE = 'other';

export type GrpcMethodType = 'unary' | 'server_stream' | 'client_stream' | 'bidi_stream';
const GRPC_METHOD_TYPES: ReadonlySet<string> = new Set<GrpcMethodType>(['unary', 'server_stream', 'client_stream', 'bidi_stream']);

/** One gRPC call as metrics label it: `service` is the fully qualified name (`jaf.workflows.v1.WorkflowService`). */
export interface RpcCall {
  readonly service: string;
  readonly method: string;
  readonly type: GrpcMethodType;
}

export type ModelRequestOutcome = 'ok' | 'error' | 'cancelled';
const MODEL_OUTCOMES: ReadonlySet<string> = new Set<ModelRequestOutcome>(['ok', 'error', 'cancelled']);

export interface ModelUsage {
  /** `undefined` means the provider's default model (reported as `default`). */
  readonly model: string | undefined;
  readonly agent: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface ModelRequest {
  readonly model: string | undefined;
  readonly agent: string;
  readonly outcome: ModelRequestOutcome;
}

export interface MetricsSources {
  /** Runs the engine is executing now. */
  readonly activeRuns?: () => number;
  /** The tool pool's figures; `undefined` before the pool exists. */
  readonly pool?: () => PoolStats | undefined;
}

export interface WorkflowMetricsOptions {
  /** prom-client's process and Node.js runtime metrics on this registry. Default true. */
  readonly defaultMetrics?: boolean;
  /** Default 256, at most 10,000. */
  readonly maxLabelValues?: number;
  /** Default 100,000, at most 10,000,000. */
  readonly maxTrackedRuns?: number;
  /** Default 100,000, at most 10,000,000. */
  readonly maxTrackedSteps?: number;
}

type RunFinishStatus = 'completed' | 'failed' | 'cancelled';

/** What is remembered of a run between its events. */
interface TrackedRun {
  readonly startedAt: number | undefined;
  /** Kinds of the run's running steps by path; deleted when the step finishes. */
  readonly stepKinds: Map<string, StepKind | 'unknown'>;
}

export class WorkflowMetrics {
  readonly registry = new Registry();

  readonly #runsStarted: Counter;
  readonly #runsFinished: Counter<'status'>;
  readonly #runDuration: Histogram<'status'>;
  readonly #stepDuration: Histogram<'kind' | 'status'>;
  readonly #stepRetries: Counter<'kind' | 'reason'>;
  readonly #poolWait: Histogram;
  readonly #streamSubscribers: Gauge;
  readonly #modelTokens: Counter<'model' | 'agent' | 'type'>;
  readonly #modelRequests: Counter<'model' | 'agent' | 'outcome'>;
  readonly #grpcStarted: Counter<GrpcLabel>;
  readonly #grpcHandled: Counter<GrpcLabel | 'grpc_code'>;
  readonly #grpcReceived: Counter<GrpcLabel>;
  readonly #grpcSent: Counter<GrpcLabel>;
  readonly #grpcHandling: Histogram<GrpcLabel | 'grpc_code'>;
  readonly #invalid: Counter<'method'>;

  #sources: MetricsSources = {};
  #openStreams = 0;
  readonly #runs = new Map<string, TrackedRun>();
  #trackedSteps = 0;
  readonly #maxTrackedRuns: number;
  readonly #maxTrackedSteps: number;
  readonly #labels: Record<'model' | 'agent' | 'service' | 'method', BoundedLabel>;

  constructor(options: WorkflowMetricsOptions = {}) {
    const maxLabelValues = checkedLimit('maxLabelValues', options.maxLabelValues, MetricsLimits.defaultMaxLabelValues, MetricsLimits.maxLabelValues);
    this.#maxTrackedRuns = checkedLimit('maxTrackedRuns', options.maxTrackedRuns, MetricsLimits.defaultMaxTrackedRuns, MetricsLimits.maxTrackedRuns);
    this.#maxTrackedSteps = checkedLimit('maxTrackedSteps', options.maxTrackedSteps, MetricsLimits.defaultMaxTrackedSteps, MetricsLimits.maxTrackedSteps);
    this.#labels = {
      model: new BoundedLabel(maxLabelValues),
      agent: new BoundedLabel(maxLabelValues),
      service: new BoundedLabel(maxLabelValues),
      method: new BoundedLabel(maxLabelValues),
    };
    const registers = [this.registry];

    this.#runsStarted = new Counter({ name: 'jaf_runs_started_total', help: 'Workflow runs started.', registers });
    this.#runsFinished = new Counter({
      name: 'jaf_runs_finished_total',
      help: 'Workflow runs finished, by final status (completed, failed, cancelled).',
      labelNames: ['status'],
      registers,
    });
    this.#runDuration = new Histogram({
      name: 'jaf_run_duration_seconds',
      help: 'Run duration from run_started to its final event, by final status (runs started before this process are not observed).',
      labelNames: ['status'],
      buckets: [...RUN_DURATION_BUCKETS],
      registers,
    });
    this.#stepDuration = new Histogram({
      name: 'jaf_step_duration_seconds',
      help: 'Step execution time (all attempts), by step kind and final status (completed, failed, skipped, cancelled).',
      labelNames: ['kind', 'status'],
      buckets: [...STEP_DURATION_BUCKETS],
      registers,
    });
    this.#stepRetries = new Counter({
      name: 'jaf_step_retries_total',
      help: 'Step retries, by step kind and who asked (retry_policy, error_handler).',
      labelNames: ['kind', 'reason'],
      registers,
    });

    const metrics = this;
    new Gauge({
      name: 'jaf_runs_active',
      help: 'Runs this process is executing now.',
      registers,
      collect() {
        this.set(metrics.#readSource('activeRuns', () => metrics.#sources.activeRuns?.()) ?? 0);
      },
    });
    registerPoolMetrics(registers, () => metrics.#readSource('pool', () => metrics.#sources.pool?.()), (method) => metrics.#reject(method));
    this.#poolWait = new Histogram({
      name: 'jaf_pool_wait_seconds',
      help: 'Time a pool task waited for a thread before it started.',
      buckets: [...STEP_DURATION_BUCKETS],
      registers,
    });

    this.#streamSubscribers = new Gauge({ name: 'jaf_stream_subscribers', help: 'Open event streams (WatchRun, ExecuteWorkflow).', registers });
    this.#modelTokens = new Counter({
      name: 'jaf_model_tokens_total',
      help: 'Model tokens used, by model, agent and type (prompt, completion).',
      labelNames: ['model', 'agent', 'type'],
      registers,
    });
    this.#modelRequests = new Counter({
      name: 'jaf_model_requests_total',
      help: 'Model requests, by model, agent and outcome (ok, error, cancelled).',
      labelNames: ['model', 'agent', 'outcome'],
      registers,
    });

    // go-grpc-prometheus names and labels, so existing dashboards and alerts work unchanged (§3.1).
    const grpcLabels: GrpcLabel[] = ['grpc_type', 'grpc_service', 'grpc_method'];
    this.#grpcStarted = new Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames: grpcLabels, registers });
    this.#grpcHandled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: [...grpcLabels, 'grpc_code'],
      registers,
    });
    this.#grpcReceived = new Counter({ name: 'grpc_server_msg_received_total', help: 'Total number of RPC stream messages received on the server.', labelNames: grpcLabels, registers });
    this.#grpcSent = new Counter({ name: 'grpc_server_msg_sent_total', help: 'Total number of gRPC stream messages sent by the server.', labelNames: grpcLabels, registers });
    this.#grpcHandling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames: [...grpcLabels, 'grpc_code'],
      buckets: [...GRPC_HANDLING_BUCKETS],
      registers,
    });

    this.#invalid = new Counter({
      name: 'jaf_metrics_invalid_observations_total',
      help: 'Observations dropped because their input was invalid, by recording method.',
      labelNames: ['method'],
      registers,
    });

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  setSources(sources: MetricsSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** Folds one committed RunEvent into the run, step and retry metrics. Never throws. */
  observeEvent(event: RunEvent): void {
    this.#safely('observeEvent', () => this.#observe(event));
  }

  /** How long a pool task waited for a thread, in seconds. */
  observePoolWait(seconds: number): void {
    this.#safely('observePoolWait', () => {
      if (!isNonNegative(seconds)) return this.#reject('observePoolWait');
      this.#poolWait.observe(seconds);
    });
  }

  streamOpened(): void {
    this.#openStreams += 1;
    this.#streamSubscribers.set(this.#openStreams);
  }

  streamClosed(): void {
    if (this.#openStreams === 0) return this.#reject('streamClosed');
    this.#openStreams -= 1;
    this.#streamSubscribers.set(this.#openStreams);
  }

  /** Tokens of one model response. */
  observeModelUsage(usage: ModelUsage): void {
    this.#safely('observeModelUsage', () => {
      if (!isNonNegative(usage.promptTokens) || !isNonNegative(usage.completionTokens)) return this.#reject('observeModelUsage');
      const model = this.#labels.model.value(usage.model ?? 'default');
      const agent = this.#labels.agent.value(usage.agent);
      if (usage.promptTokens > 0) this.#modelTokens.inc({ model, agent, type: 'prompt' }, usage.promptTokens);
      if (usage.completionTokens > 0) this.#modelTokens.inc({ model, agent, type: 'completion' }, usage.completionTokens);
    });
  }

  observeModelRequest(request: ModelRequest): void {
    this.#safely('observeModelRequest', () => {
      if (!MODEL_OUTCOMES.has(request.outcome)) return this.#reject('observeModelRequest');
      const model = this.#labels.model.value(request.model ?? 'default');
      this.#modelRequests.inc({ model, agent: this.#labels.agent.value(request.agent), outcome: request.outcome });
    });
  }

  rpcStarted(call: RpcCall): void {
    this.#safely('rpcStarted', () => this.#grpcStarted.inc(this.#rpcLabels(call)));
  }

  rpcMessageReceived(call: RpcCall): void {
    this.#safely('rpcMessageReceived', () => this.#grpcReceived.inc(this.#rpcLabels(call)));
  }

  rpcMessageSent(call: RpcCall): void {
    this.#safely('rpcMessageSent', () => this.#grpcSent.inc(this.#rpcLabels(call)));
  }

  /** A call ended with grpc status `code` (a number of @grpc/grpc-js `status`) after `seconds`. */
  rpcHandled(call: RpcCall, code: number, seconds: number): void {
    this.#safely('rpcHandled', () => {
      if (!isNonNegative(seconds)) throw new RangeError(`seconds ${seconds}`);
      const labels = { ...this.#rpcLabels(call), grpc_code: grpcCodeName(code) };
      this.#grpcHandled.inc(labels);
      this.#grpcHandling.observe(labels, seconds);
    });
  }

  #observe(event: RunEvent): void {
    switch (event.type) {
      case 'run_started':
        this.#runsStarted.inc();
        this.#track(event.runId, event.at);
        return;
      case 'step_started': {
        const run = this.#runs.get(event.runId) ?? this.#track(event.runId, undefined);
        if (run === undefined) return;
        if (!run.stepKinds.has(event.path)) {
          if (this.#trackedSteps >= this.#maxTrackedSteps) return;
          this.#trackedSteps += 1;
        }
        run.stepKinds.set(event.path, isStepKind(event.kind) ? event.kind : 'unknown');
        return;
      }
      case 'step_retrying': {
        const kind = this.#runs.get(event.runId)?.stepKinds.get(event.path) ?? 'unknown';
        this.#stepRetries.inc({ kind, reason: event.reason });
        return;
      }
      case 'step_completed':
      case 'step_failed':
      case 'step_skipped':
      case 'step_cancelled': {
        this.#forgetStep(event.runId, event.path);
        const { kind, executionTimeMs } = event.result;
        if (!isStepKind(kind) || !isNonNegative(executionTimeMs)) throw new RangeError(`step result kind ${String(kind)}, executionTimeMs ${executionTimeMs}`);
        this.#stepDuration.observe({ kind, status: stepFinishStatus[event.type] }, executionTimeMs / 1000);
        return;
      }
      case 'step_output_delta':
      case 'model_responded':
        // Token use is counted where the response arrives (withModelMetrics), recorded or not.
        return;
      case 'run_completed':
      case 'run_failed':
      case 'run_cancelled': {
        const status = runFinishStatus[event.type];
        this.#runsFinished.inc({ status });
        const run = this.#runs.get(event.runId);
        if (run === undefined) return;
        this.#runs.delete(event.runId);
        this.#trackedSteps -= run.stepKinds.size;
        if (run.startedAt !== undefined) this.#runDuration.observe({ status }, Math.max(0, event.at - run.startedAt) / 1000);
        return;
      }
      default:
        assertNever(event);
    }
  }

  /** Remembers a run, unless `maxTrackedRuns` are remembered already (its duration then goes unobserved). */
  #track(runId: string, startedAt: number | undefined): TrackedRun | undefined {
    if (this.#runs.size >= this.#maxTrackedRuns && !this.#runs.has(runId)) return undefined;
    const run: TrackedRun = { startedAt, stepKinds: this.#runs.get(runId)?.stepKinds ?? new Map() };
    this.#runs.set(runId, run);
    return run;
  }

  #forgetStep(runId: string, path: string): void {
    if (this.#runs.get(runId)?.stepKinds.delete(path)) this.#trackedSteps -= 1;
  }

  /** Throws on a call type outside the four (recorded by #safely as an invalid observation). */
  #rpcLabels(call: RpcCall): Record<GrpcLabel, string> {
    if (!GRPC_METHOD_TYPES.has(call.type)) throw new RangeError(`grpc_type ${String(call.type)}`);
    return { grpc_type: call.type, grpc_service: this.#labels.service.value(call.service), grpc_method: this.#labels.method.value(call.method) };
  }

  /** A source that throws or returns garbage must not break the scrape: it reads as absent. */
  #readSource<T>(name: string, read: () => T | undefined): T | undefined {
    try {
      const value = read();
      if (typeof value === 'number' && !isNonNegative(value)) throw new RangeError(`${name} returned ${value}`);
      return value;
    } catch {
      this.#reject(`source:${name}`);
      return undefined;
    }
  }

  #reject(method: string): void {
    this.#invalid.inc({ method });
  }

  /** Runs one recording; bad input throws inside and is counted, never passed to the caller. */
  #safely(method: string, record: () => void): void {
    try {
      record();
    } catch {
      this.#reject(method);
    }
  }
}

type GrpcLabel = 'grpc_type' | 'grpc_service' | 'grpc_method';

const stepFinishStatus: Readonly<Record<StepFinishedEvent['type'], FinishedStepStatus>> = {
  step_completed: 'completed',
  step_failed: 'failed',
  step_skipped: 'skipped',
  step_cancelled: 'cancelled',
};

/** Every step kind, so a kind label can only take these values (the Record keeps it complete). */
const STEP_KINDS: Readonly<Record<StepKind, true>> = { tool: true, agent: true, conditional: true, parallel: true, loop: true };

function isStepKind(value: unknown): value is StepKind {
  return typeof value === 'string' && Object.hasOwn(STEP_KINDS, value);
}

const runFinishStatus: Readonly<Record<'run_completed' | 'run_failed' | 'run_cancelled', RunFinishStatus>> = {
  run_completed: 'completed',
  run_failed: 'failed',
  run_cancelled: 'cancelled',
};

/** The status's name (`OK`, `INVALID_ARGUMENT`...); a number gRPC does not define reads as UNKNOWN, as the spec says. */
export function grpcCodeName(code: number): string {
  const name: unknown = (GrpcStatus as unknown as Record<number, unknown>)[code];
  return typeof name === 'string' ? name : 'UNKNOWN';
}

function checkedLimit(field: string, given: number | undefined, fallback: number, max: number): number {
  if (given === undefined) return fallback;
  if (!Number.isInteger(given) || given < 1 || given > max) throw new RangeError(`WorkflowMetrics: ${field} must be an integer from 1 to ${max}, got ${given}`);
  return given;
}

/** The values one label has taken, up to a cap; later new values collapse into `other`. */
class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  value(raw: string): string {
    if (typeof raw !== 'string' || raw === '') return 'unknown';
    if (this.#seen.has(raw)) return raw;
    if (raw.length > MetricsLimits.maxLabelValueLength || this.#seen.size >= this.#max) return OVERFLOW_LABEL_VALUE;
    this.#seen.add(raw);
    return raw;
  }
}

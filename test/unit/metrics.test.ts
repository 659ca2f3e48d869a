/**
 * WorkflowMetrics: committed RunEvents folded into run/step/retry metrics, scrape-time sources, the
 * recording methods (pool wait, streams, models, gRPC), label bounds, and the Grafana dashboard, which
 * may only query metrics the registry has.
 */
import { readFileSync } from 'node:fs';
import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Agent, AgentStep, ScriptedModelProvider, Tool, ToolStep, WorkflowBuilder, WorkflowContext, WorkflowEngine, type RunEvent, type StepResultData } from 'jaf-workflows';
import type { StepKind } from '../../src/definition/types.ts';
import { rpcCallOf } from '../../src/observability/grpc-metrics.ts';
import { MetricsLimits, WorkflowMetrics, grpcCodeName, type RpcCall } from '../../src/observability/metrics.ts';
import { withModelMetrics } from '../../src/observability/model-metrics.ts';
import { quietLogger } from '../helpers/logging.ts';
import { recordingClock } from '../integration/support.ts';

type Labels = Readonly<Record<string, string | number>>;

/** The value of one sample (`name` may be a histogram's `_bucket`/`_sum`/`_count`), labels matched exactly; undefined if absent. */
async function sample(metrics: WorkflowMetrics, name: string, labels: Labels = {}): Promise<number | undefined> {
  const found: number[] = [];
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const v of metric.values) {
      const sampleName = (v as { metricName?: string }).metricName ?? metric.name;
      if (sampleName !== name) continue;
      const actual = v.labels as Labels;
      const keys = new Set([...Object.keys(actual), ...Object.keys(labels)]);
      if ([...keys].every((k) => String(actual[k]) === String(labels[k]))) found.push(v.value);
    }
  }
  expect(found.length, `${name} ${JSON.stringify(labels)} matched more than one sample`).toBeLessThanOrEqual(1);
  return found[0];
}

const noDefaults = () => new WorkflowMetrics({ defaultMetrics: false });

let seq = 0;
const base = (runId: string, at: number) => ({ seq: ++seq, runId, at });
const runStarted = (runId: string, at: number): RunEvent => ({
  ...base(runId, at),
  type: 'run_started',
  workflowId: 'wf',
  workflowName: 'wf',
  definitionHash: 'h',
  totalSteps: 1,
  input: { workflowId: 'wf', userContext: null, initialData: {}, variables: {}, metadata: {} },
});
const stepStarted = (runId: string, path: string, kind: StepKind, attempt = 1): RunEvent => ({
  ...base(runId, 0),
  type: 'step_started',
  path,
  parent: undefined,
  stepId: path,
  kind,
  attempt,
});
const stepRetrying = (runId: string, path: string, reason: 'retry_policy' | 'error_handler'): RunEvent => ({
  ...base(runId, 0),
  type: 'step_retrying',
  path,
  attempt: 1,
  error: { code: 'TOOL_ERROR', message: 'boom', retryable: true },
  delayMs: 10,
  reason,
});
const stepFinished = (runId: string, path: string, kind: StepKind, status: StepResultData['status'], executionTimeMs: number): RunEvent => ({
  ...base(runId, 0),
  type: `step_${status}`,
  path,
  parent: undefined,
  result: { stepId: path, path, kind, status, executionTimeMs, attempts: 1 },
});
const runFinished = (runId: string, at: number, status: 'completed' | 'failed' | 'cancelled'): RunEvent => ({ ...base(runId, at), type: `run_${status}` });

describe('runs, steps and retries from RunEvents', () => {
  it('folds one run: counts, run and step durations, retries labelled with the kind learned from step_started', async () => {
    const m = noDefaults();
    for (const event of [
      runStarted('r1', 10_000),
      stepStarted('r1', 'validate', 'tool'),
      stepRetrying('r1', 'validate', 'retry_policy'),
      stepStarted('r1', 'validate', 'tool', 2),
      stepFinished('r1', 'validate', 'tool', 'completed', 1500),
      stepStarted('r1', 'check', 'conditional'),
      stepFinished('r1', 'check', 'conditional', 'skipped', 0),
      runFinished('r1', 13_000, 'completed'),
    ]) {
      m.observeEvent(event);
    }
    expect(await sample(m, 'jaf_runs_started_total')).toBe(1);
    expect(await sample(m, 'jaf_runs_finished_total', { status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_run_duration_seconds_count', { status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_run_duration_seconds_sum', { status: 'completed' })).toBe(3);
    expect(await sample(m, 'jaf_run_duration_seconds_bucket', { status: 'completed', le: 2.5 })).toBe(0);
    expect(await sample(m, 'jaf_run_duration_seconds_bucket', { status: 'completed', le: 5 })).toBe(1);
    expect(await sample(m, 'jaf_step_duration_seconds_count', { kind: 'tool', status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_step_duration_seconds_sum', { kind: 'tool', status: 'completed' })).toBe(1.5);
    expect(await sample(m, 'jaf_step_duration_seconds_bucket', { kind: 'tool', status: 'completed', le: 1 })).toBe(0);
    expect(await sample(m, 'jaf_step_duration_seconds_bucket', { kind: 'tool', status: 'completed', le: 2.5 })).toBe(1);
    expect(await sample(m, 'jaf_step_duration_seconds_count', { kind: 'conditional', status: 'skipped' })).toBe(1);
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'tool', reason: 'retry_policy' })).toBe(1);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observeEvent' })).toBeUndefined();
  });

  it('labels finished runs by status and exposes them in the text format', async () => {
    const m = noDefaults();
    m.observeEvent(runStarted('a', 0));
    m.observeEvent(runFinished('a', 500, 'failed'));
    m.observeEvent(runStarted('b', 0));
    m.observeEvent(runFinished('b', 250, 'cancelled'));
    m.observeEvent(runStarted('c', 0));
    m.observeEvent(runFinished('c', 100, 'failed'));
    const text = await m.registry.getSingleMetricAsString('jaf_runs_finished_total');
    expect(text).toContain('# TYPE jaf_runs_finished_total counter');
    expect(text).toContain('jaf_runs_finished_total{status="failed"} 2');
    expect(text).toContain('jaf_runs_finished_total{status="cancelled"} 1');
    expect(await sample(m, 'jaf_run_duration_seconds_sum', { status: 'failed' })).toBeCloseTo(0.6, 10);
  });

  it('a run started before this process counts its finish but has no duration; an unknown step retries as kind "unknown"', async () => {
    const m = noDefaults();
    m.observeEvent(stepRetrying('old', 'fulfillment/update_crm', 'error_handler'));
    m.observeEvent(runFinished('old', 9_000, 'completed'));
    expect(await sample(m, 'jaf_runs_finished_total', { status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_run_duration_seconds_count', { status: 'completed' })).toBeUndefined();
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'unknown', reason: 'error_handler' })).toBe(1);
  });

  it('never throws: a malformed or unknown event (or other bad input) is dropped and counted', async () => {
    const m = noDefaults();
    expect(() => m.observeEvent({ type: 'run_exploded', seq: 1, runId: 'x', at: 0 } as unknown as RunEvent)).not.toThrow();
    expect(() => m.observeEvent({ type: 'step_completed', seq: 2, runId: 'x', at: 0, path: 'p' } as unknown as RunEvent)).not.toThrow();
    m.observeEvent(stepFinished('x', 'p', 'tool', 'completed', -5));
    m.observeEvent(stepFinished('x', 'p', 'teleport' as StepKind, 'completed', 5));
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observeEvent' })).toBe(4);
    expect(await sample(m, 'jaf_step_duration_seconds_count', { kind: 'tool', status: 'completed' })).toBeUndefined();
    // A kind the engine does not have never becomes a label value.
    m.observeEvent(stepStarted('x', 'q', 'teleport' as StepKind));
    m.observeEvent(stepRetrying('x', 'q', 'retry_policy'));
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'unknown', reason: 'retry_policy' })).toBe(1);
    // Nor do the other recording methods throw.
    expect(() => m.observeModelUsage(null as unknown as Parameters<WorkflowMetrics['observeModelUsage']>[0])).not.toThrow();
    expect(() => m.rpcHandled({ service: 's', method: 'm', type: 'unary' }, 0, -1)).not.toThrow();
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observeModelUsage' })).toBe(1);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'rpcHandled' })).toBe(1);
    expect(await sample(m, 'grpc_server_handled_total', { grpc_type: 'unary', grpc_service: 's', grpc_method: 'm', grpc_code: 'OK' })).toBeUndefined();
  });

  it('bounds what it remembers: runs past maxTrackedRuns go without a duration, steps past maxTrackedSteps retry as "unknown"', async () => {
    const m = new WorkflowMetrics({ defaultMetrics: false, maxTrackedRuns: 2, maxTrackedSteps: 1 });
    m.observeEvent(runStarted('r1', 0));
    m.observeEvent(runStarted('r2', 0));
    m.observeEvent(runStarted('r3', 0)); // not remembered
    m.observeEvent(stepStarted('r1', 'a', 'agent'));
    m.observeEvent(stepStarted('r1', 'b', 'loop')); // past the step cap
    m.observeEvent(stepRetrying('r1', 'a', 'retry_policy'));
    m.observeEvent(stepRetrying('r1', 'b', 'retry_policy'));
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'agent', reason: 'retry_policy' })).toBe(1);
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'unknown', reason: 'retry_policy' })).toBe(1);
    // A finished step frees its place.
    m.observeEvent(stepFinished('r1', 'a', 'agent', 'completed', 1));
    m.observeEvent(stepStarted('r1', 'c', 'parallel'));
    m.observeEvent(stepRetrying('r1', 'c', 'error_handler'));
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'parallel', reason: 'error_handler' })).toBe(1);
    // A finished run frees its place (and its steps').
    m.observeEvent(runFinished('r3', 1000, 'completed'));
    m.observeEvent(runFinished('r1', 1000, 'completed'));
    m.observeEvent(runStarted('r4', 0));
    m.observeEvent(runFinished('r4', 2000, 'completed'));
    m.observeEvent(stepStarted('r2', 'd', 'tool'));
    m.observeEvent(stepRetrying('r2', 'd', 'retry_policy'));
    expect(await sample(m, 'jaf_runs_started_total')).toBe(4);
    expect(await sample(m, 'jaf_runs_finished_total', { status: 'completed' })).toBe(3);
    expect(await sample(m, 'jaf_run_duration_seconds_count', { status: 'completed' })).toBe(2);
    expect(await sample(m, 'jaf_run_duration_seconds_sum', { status: 'completed' })).toBe(3);
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'tool', reason: 'retry_policy' })).toBe(1);
  });

  it('folds the events of a real engine run (a tool step that fails once and is retried)', async () => {
    const m = noDefaults();
    const engine = new WorkflowEngine({ logger: quietLogger(), clock: recordingClock() });
    try {
      let calls = 0;
      const flaky = new Tool({
        name: 'flaky',
        execute: () => {
          calls += 1;
          if (calls === 1) throw new Error('first call fails');
          return { ok: true };
        },
      });
      const workflow = new WorkflowBuilder('metrics_wf')
        .addStep(new ToolStep('flaky_step', flaky).withRetry(2))
        .addStep(new ToolStep('never', flaky).addCondition(() => false))
        .build();
      const result = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'metrics' }), { onEvent: (e) => m.observeEvent(e) });
      expect(result.status).toBe('completed');
    } finally {
      await engine.close();
    }
    expect(await sample(m, 'jaf_runs_started_total')).toBe(1);
    expect(await sample(m, 'jaf_runs_finished_total', { status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_run_duration_seconds_count', { status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_step_retries_total', { kind: 'tool', reason: 'retry_policy' })).toBe(1);
    expect(await sample(m, 'jaf_step_duration_seconds_count', { kind: 'tool', status: 'completed' })).toBe(1);
    expect(await sample(m, 'jaf_step_duration_seconds_count', { kind: 'tool', status: 'skipped' })).toBe(1);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observeEvent' })).toBeUndefined();
  });
});

describe('gauges read at scrape time', () => {
  it('reads active runs and pool figures from the sources, 0 without them', async () => {
    const m = noDefaults();
    expect(await sample(m, 'jaf_runs_active')).toBe(0);
    expect(await sample(m, 'jaf_pool_threads')).toBe(0);
    let stats = { threads: 4, inFlight: 6, waiting: 2, completed: 10, utilization: 0.25, batches: 2, batchedTasks: 9 };
    m.setSources({ activeRuns: () => 3, pool: () => stats });
    expect(await sample(m, 'jaf_runs_active')).toBe(3);
    expect(await sample(m, 'jaf_pool_threads')).toBe(4);
    expect(await sample(m, 'jaf_pool_tasks_in_flight')).toBe(6);
    expect(await sample(m, 'jaf_pool_queue_depth')).toBe(2);
    expect(await sample(m, 'jaf_pool_utilization_ratio')).toBe(0.25);
    expect(await sample(m, 'jaf_pool_tasks_completed_total')).toBe(10);
    expect(await sample(m, 'jaf_pool_batches_total')).toBe(2);
    expect(await sample(m, 'jaf_pool_batched_tasks_total')).toBe(9);
    stats = { threads: 4, inFlight: 1, waiting: 0, completed: 15, utilization: 0.5, batches: 3, batchedTasks: 12 };
    expect(await sample(m, 'jaf_pool_queue_depth')).toBe(0);
    expect(await sample(m, 'jaf_pool_tasks_completed_total')).toBe(15);
    expect(await sample(m, 'jaf_pool_batched_tasks_total')).toBe(12);
    // setSources merges: replacing the pool keeps activeRuns.
    m.setSources({ pool: () => undefined });
    expect(await sample(m, 'jaf_runs_active')).toBe(3);
    expect(await sample(m, 'jaf_pool_threads')).toBe(0);
    expect(await sample(m, 'jaf_pool_tasks_completed_total')).toBe(0);
  });

  it('a source that throws or returns nonsense does not break the scrape; it is counted', async () => {
    const m = noDefaults();
    m.setSources({
      activeRuns: () => {
        throw new Error('engine gone');
      },
      pool: () => ({ threads: Number.NaN, inFlight: 1, waiting: 0, completed: -1, utilization: 0.1, batches: 0, batchedTasks: 0 }),
    });
    const text = await m.registry.metrics();
    expect(text).toContain('jaf_runs_active 0');
    expect(text).toContain('jaf_pool_utilization_ratio 0.1');
    // One scrape, one count each (every scrape reads the sources again).
    expect(text).toContain('jaf_metrics_invalid_observations_total{method="source:activeRuns"} 1');
    expect(text).toContain('jaf_metrics_invalid_observations_total{method="source:pool:jaf_pool_threads"} 1');
    expect(text).toContain('jaf_metrics_invalid_observations_total{method="source:pool:jaf_pool_tasks_completed_total"} 1');
    expect(text).toContain('jaf_pool_threads 0');
  });
});

describe('recording methods', () => {
  it('observePoolWait fills jaf_pool_wait_seconds and drops invalid durations', async () => {
    const m = noDefaults();
    m.observePoolWait(0.002);
    m.observePoolWait(90);
    m.observePoolWait(-1);
    m.observePoolWait(Number.NaN);
    expect(await sample(m, 'jaf_pool_wait_seconds_count')).toBe(2);
    expect(await sample(m, 'jaf_pool_wait_seconds_sum')).toBe(90.002);
    expect(await sample(m, 'jaf_pool_wait_seconds_bucket', { le: 0.005 })).toBe(1);
    expect(await sample(m, 'jaf_pool_wait_seconds_bucket', { le: 60 })).toBe(1);
    expect(await sample(m, 'jaf_pool_wait_seconds_bucket', { le: 120 })).toBe(2);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observePoolWait' })).toBe(2);
  });

  it('counts stream subscribers and never goes below zero', async () => {
    const m = noDefaults();
    m.streamOpened();
    m.streamOpened();
    m.streamClosed();
    expect(await sample(m, 'jaf_stream_subscribers')).toBe(1);
    m.streamClosed();
    m.streamClosed();
    expect(await sample(m, 'jaf_stream_subscribers')).toBe(0);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'streamClosed' })).toBe(1);
  });

  it('counts model tokens by type and requests by outcome; no model means the provider default', async () => {
    const m = noDefaults();
    m.observeModelUsage({ model: 'gpt-test', agent: 'fulfillment_agent', promptTokens: 120, completionTokens: 30 });
    m.observeModelUsage({ model: 'gpt-test', agent: 'fulfillment_agent', promptTokens: 80, completionTokens: 0 });
    m.observeModelUsage({ model: undefined, agent: 'inventory_agent', promptTokens: 5, completionTokens: 7 });
    m.observeModelUsage({ model: 'gpt-test', agent: 'fulfillment_agent', promptTokens: -1, completionTokens: 3 });
    m.observeModelRequest({ model: 'gpt-test', agent: 'fulfillment_agent', outcome: 'ok' });
    m.observeModelRequest({ model: 'gpt-test', agent: 'fulfillment_agent', outcome: 'ok' });
    m.observeModelRequest({ model: 'gpt-test', agent: 'fulfillment_agent', outcome: 'error' });
    expect(await sample(m, 'jaf_model_tokens_total', { model: 'gpt-test', agent: 'fulfillment_agent', type: 'prompt' })).toBe(200);
    expect(await sample(m, 'jaf_model_tokens_total', { model: 'gpt-test', agent: 'fulfillment_agent', type: 'completion' })).toBe(30);
    expect(await sample(m, 'jaf_model_tokens_total', { model: 'default', agent: 'inventory_agent', type: 'completion' })).toBe(7);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'gpt-test', agent: 'fulfillment_agent', outcome: 'ok' })).toBe(2);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'gpt-test', agent: 'fulfillment_agent', outcome: 'error' })).toBe(1);
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'observeModelUsage' })).toBe(1);
  });

  it('records gRPC calls with go-grpc-prometheus names, and the status code by name', async () => {
    const m = noDefaults();
    const start: RpcCall = { service: 'jaf.workflows.v1.WorkflowService', method: 'StartRun', type: 'unary' };
    const watch: RpcCall = { service: 'jaf.workflows.v1.WorkflowService', method: 'WatchRun', type: 'server_stream' };
    m.rpcStarted(start);
    m.rpcMessageReceived(start);
    m.rpcMessageSent(start);
    m.rpcHandled(start, 0, 0.02);
    m.rpcStarted(start);
    m.rpcMessageReceived(start);
    m.rpcHandled(start, 3, 0.001);
    m.rpcStarted(watch);
    m.rpcMessageReceived(watch);
    for (let i = 0; i < 5; i += 1) m.rpcMessageSent(watch);
    m.rpcHandled(watch, 14, 42);
    const s = { grpc_service: 'jaf.workflows.v1.WorkflowService' };
    expect(await sample(m, 'grpc_server_started_total', { ...s, grpc_type: 'unary', grpc_method: 'StartRun' })).toBe(2);
    expect(await sample(m, 'grpc_server_msg_received_total', { ...s, grpc_type: 'unary', grpc_method: 'StartRun' })).toBe(2);
    expect(await sample(m, 'grpc_server_msg_sent_total', { ...s, grpc_type: 'server_stream', grpc_method: 'WatchRun' })).toBe(5);
    expect(await sample(m, 'grpc_server_handled_total', { ...s, grpc_type: 'unary', grpc_method: 'StartRun', grpc_code: 'OK' })).toBe(1);
    expect(await sample(m, 'grpc_server_handled_total', { ...s, grpc_type: 'unary', grpc_method: 'StartRun', grpc_code: 'INVALID_ARGUMENT' })).toBe(1);
    expect(await sample(m, 'grpc_server_handled_total', { ...s, grpc_type: 'server_stream', grpc_method: 'WatchRun', grpc_code: 'UNAVAILABLE' })).toBe(1);
    expect(await sample(m, 'grpc_server_handling_seconds_sum', { ...s, grpc_type: 'server_stream', grpc_method: 'WatchRun', grpc_code: 'UNAVAILABLE' })).toBe(42);
    expect(await sample(m, 'grpc_server_handling_seconds_bucket', { ...s, grpc_type: 'unary', grpc_method: 'StartRun', grpc_code: 'OK', le: 0.01 })).toBe(0);
    expect(await sample(m, 'grpc_server_handling_seconds_bucket', { ...s, grpc_type: 'unary', grpc_method: 'StartRun', grpc_code: 'OK', le: 0.025 })).toBe(1);
    // A call type outside the four is dropped, not recorded under a made-up label.
    m.rpcStarted({ ...start, type: 'duplex' as RpcCall['type'] });
    expect(await sample(m, 'jaf_metrics_invalid_observations_total', { method: 'rpcStarted' })).toBe(1);
  });

  it('withModelMetrics records outcomes and tokens of the requests a real agent step makes', async () => {
    const m = noDefaults();
    const scripted = new ScriptedModelProvider([
      { message: { content: 'first answer' }, usage: { promptTokens: 11, completionTokens: 4 } },
      () => {
        throw new Error('model down');
      },
    ]);
    const engine = new WorkflowEngine({
      logger: quietLogger(),
      clock: recordingClock(),
      agents: [new Agent({ name: 'writer', instructions: 'write', model: 'model-a' })],
      modelProvider: withModelMetrics(scripted, m),
    });
    try {
      const workflow = new WorkflowBuilder('agent_wf').addStep(new AgentStep('write', 'writer').withInput('go')).build();
      const ok = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'a' }));
      expect(ok.status).toBe('completed');
      const failed = await engine.executeWorkflow(workflow, new WorkflowContext({ workflowId: 'b' }));
      expect(failed.status).toBe('failed');
    } finally {
      await engine.close();
    }
    expect(await sample(m, 'jaf_model_requests_total', { model: 'model-a', agent: 'writer', outcome: 'ok' })).toBe(1);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'model-a', agent: 'writer', outcome: 'error' })).toBe(1);
    expect(await sample(m, 'jaf_model_tokens_total', { model: 'model-a', agent: 'writer', type: 'prompt' })).toBe(11);
    expect(await sample(m, 'jaf_model_tokens_total', { model: 'model-a', agent: 'writer', type: 'completion' })).toBe(4);
  });

  it('labels a call from its method path and streaming flags', () => {
    expect(rpcCallOf('/jaf.workflows.v1.WorkflowService/WatchRun', false, true)).toEqual({ service: 'jaf.workflows.v1.WorkflowService', method: 'WatchRun', type: 'server_stream' });
    expect(rpcCallOf('/a.B/C', false, false).type).toBe('unary');
    expect(rpcCallOf('/a.B/C', true, false).type).toBe('client_stream');
    expect(rpcCallOf('/a.B/C', true, true).type).toBe('bidi_stream');
    expect(rpcCallOf('garbage', false, false)).toEqual({ service: 'unknown', method: 'unknown', type: 'unary' });
  });

  it('names every gRPC status code; numbers gRPC does not define are UNKNOWN', () => {
    expect([0, 1, 2, 3, 4, 5, 8, 12, 13, 14, 16].map(grpcCodeName)).toEqual([
      'OK',
      'CANCELLED',
      'UNKNOWN',
      'INVALID_ARGUMENT',
      'DEADLINE_EXCEEDED',
      'NOT_FOUND',
      'RESOURCE_EXHAUSTED',
      'UNIMPLEMENTED',
      'INTERNAL',
      'UNAVAILABLE',
      'UNAUTHENTICATED',
    ]);
    expect(grpcCodeName(17)).toBe('UNKNOWN');
    expect(grpcCodeName(-1)).toBe('UNKNOWN');
  });
});

describe('bounded labels and naming', () => {
  it('caps the values of an open-ended label; later values and over-long ones read as "other"', async () => {
    const m = new WorkflowMetrics({ defaultMetrics: false, maxLabelValues: 2 });
    for (const agent of ['a1', 'a2', 'a3', 'a1']) m.observeModelRequest({ model: 'm', agent, outcome: 'ok' });
    m.observeModelRequest({ model: 'x'.repeat(MetricsLimits.maxLabelValueLength + 1), agent: 'a2', outcome: 'ok' });
    expect(await sample(m, 'jaf_model_requests_total', { model: 'm', agent: 'a1', outcome: 'ok' })).toBe(2);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'm', agent: 'a2', outcome: 'ok' })).toBe(1);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'm', agent: 'other', outcome: 'ok' })).toBe(1);
    expect(await sample(m, 'jaf_model_requests_total', { model: 'other', agent: 'a2', outcome: 'ok' })).toBe(1);
  });

  it('rejects bad limits, naming the option and its bound', () => {
    expect(() => new WorkflowMetrics({ defaultMetrics: false, maxLabelValues: 0 })).toThrow('maxLabelValues must be an integer from 1 to 10000, got 0');
    expect(() => new WorkflowMetrics({ defaultMetrics: false, maxTrackedRuns: 1.5 })).toThrow('maxTrackedRuns must be an integer from 1 to 10000000, got 1.5');
    expect(() => new WorkflowMetrics({ defaultMetrics: false, maxTrackedSteps: 10_000_001 })).toThrow(/maxTrackedSteps must be an integer from 1 to 10000000/);
  });

  it('uses its own registry; default process metrics are optional', async () => {
    const withDefaults = new WorkflowMetrics();
    const another = new WorkflowMetrics(); // no clash: each has its own registry
    const without = noDefaults();
    const names = async (m: WorkflowMetrics) => (await m.registry.getMetricsAsJSON()).map((x) => x.name);
    expect(await names(withDefaults)).toContain('process_cpu_user_seconds_total');
    expect(await names(another)).toContain('nodejs_eventloop_lag_p99_seconds');
    expect((await names(without)).filter((n) => !n.startsWith('jaf_') && !n.startsWith('grpc_server_'))).toEqual([]);
    expect((await globalRegistry.getMetricsAsJSON()).map((x) => x.name).filter((n) => n.startsWith('jaf_'))).toEqual([]);
  });

  it('follows Prometheus naming and never labels by id or path', async () => {
    const metrics = await noDefaults().registry.getMetricsAsJSON();
    expect(metrics.length).toBe(23);
    for (const metric of metrics) {
      expect(metric.name, metric.name).toMatch(/^(jaf_|grpc_server_)[a-z_]+$/);
      if (String(metric.type) === 'counter') expect(metric.name).toMatch(/_total$/);
      else expect(metric.name).not.toMatch(/_total$/);
      if (String(metric.type) === 'histogram') expect(metric.name).toMatch(/_seconds$/);
    }
    const m = noDefaults();
    m.observeEvent(runStarted('run-1', 0));
    m.observeEvent(stepStarted('run-1', 'a/b[2]/c', 'tool'));
    m.observeEvent(stepRetrying('run-1', 'a/b[2]/c', 'retry_policy'));
    m.observeEvent(stepFinished('run-1', 'a/b[2]/c', 'tool', 'failed', 3));
    m.observeEvent(runFinished('run-1', 5, 'failed'));
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/run-1|a\/b\[2\]|\bwf\b/);
    expect(text).not.toMatch(/(run_id|runId|step_id|stepId|path|workflow_id|workflowId)=/);
  });
});

// --- The dashboard may only query metrics the registry has. -----------------------------------------

/** PromQL functions, aggregations and keywords the dashboard may use: any other word must be a metric. */
const PROMQL_WORDS = new Set([
  'sum', 'avg', 'max', 'min', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'clamp_min', 'clamp_max',
  'topk', 'bottomk', 'and', 'or', 'unless', 'bool', 'offset', 'time', 'vector', 'scalar', 'abs', 'delta', 'deriv',
]);

/** The metric names a PromQL expression selects. */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)/g, '$1')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...stripped.matchAll(/[A-Za-z_:][\w:]*/g)].map((x) => x[0]).filter((word) => !PROMQL_WORDS.has(word));
}

/** Every series name the registry exposes: histograms as `_bucket`, `_sum` and `_count`. */
async function exposedNames(m: WorkflowMetrics): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    else if (String(metric.type) === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(metric.name + suffix);
    else names.add(metric.name);
  }
  return names;
}

interface DashboardPanel {
  readonly title: string;
  readonly type: string;
  readonly datasource?: { readonly uid: string };
  readonly targets?: readonly { readonly expr: string; readonly datasource: { readonly uid: string } }[];
  readonly panels?: readonly DashboardPanel[];
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(new URL('../../grafana/jaf-workflows-dashboard.json', import.meta.url), 'utf8')) as {
    schemaVersion: number;
    panels: DashboardPanel[];
    templating: { list: { name: string; type: string; query: string | { query: string } }[] };
  };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

  it('the metric-name extractor finds names, including wrong ones (so the next test can fail)', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le, kind) (rate(jaf_step_duration_seconds_bucket{status!="skipped"}[$__rate_interval])))')).toEqual([
      'jaf_step_duration_seconds_bucket',
    ]);
    expect(metricNamesIn('sum(rate(jaf_nope_total{instance=~"$instance"}[5m])) / sum(jaf_runs_active)')).toEqual(['jaf_nope_total', 'jaf_runs_active']);
    expect(metricNamesIn('label_values(jaf_runs_started_total, instance)')).toEqual(['jaf_runs_started_total']);
  });

  it('is a Grafana 10/11 dashboard with a Prometheus data-source variable used by every panel', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${DS_PROMETHEUS}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource.uid, panel.title).toBe('${DS_PROMETHEUS}');
    }
  });

  it('queries only metrics the registry exposes', async () => {
    const exposed = await exposedNames(new WorkflowMetrics());
    const queries = [
      ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr }))),
      ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query })),
    ];
    const used = new Set<string>();
    for (const { where, expr } of queries) {
      const names = metricNamesIn(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) {
        expect(exposed.has(name), `${where}: ${name} is not in the registry`).toBe(true);
        used.add(name.replace(/_(bucket|sum|count)$/, ''));
      }
      // Quantiles need the le label kept in the aggregation.
      if (expr.includes('histogram_quantile')) expect(expr, where).toMatch(/by \(le\b/);
    }
    // The panels the coordinator's operators asked for are there.
    for (const name of [
      'jaf_runs_started_total', 'jaf_runs_finished_total', 'jaf_runs_active', 'jaf_step_duration_seconds', 'jaf_step_retries_total',
      'jaf_pool_utilization_ratio', 'jaf_pool_queue_depth', 'jaf_pool_wait_seconds', 'jaf_stream_subscribers',
      'grpc_server_handled_total', 'grpc_server_handling_seconds', 'jaf_model_tokens_total',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });
});

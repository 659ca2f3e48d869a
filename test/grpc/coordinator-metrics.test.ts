/**
 * The coordinator's metrics wired end to end: a real coordinator with WorkflowMetrics (engine events,
 * the gRPC interceptor, stream subscribers), scraped over HTTP from the metrics server.
 */
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryRunStore, Tool, WorkflowEngine } from 'jaf-workflows';
import { createCoordinator, type Coordinator } from '../../src/grpc/coordinator.ts';
import { WorkflowServiceClient } from '../../src/grpc/proto.ts';
import { startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.ts';
import { WorkflowMetrics } from '../../src/observability/metrics.ts';
import { callUnary, collectStream, type AnyClient } from '../helpers/grpc.ts';
import { quietLogger } from '../helpers/logging.ts';

let hold: Promise<void> = Promise.resolve();
const tools = [
  new Tool({ name: 'echo', execute: (args: Record<string, unknown>) => ({ ...args }) }),
  new Tool({ name: 'hold', execute: () => hold.then(() => ({ held: true })) }),
];
let store: MemoryRunStore;
let engine: WorkflowEngine;
let metrics: WorkflowMetrics;
let coordinator: Coordinator;
let server: MetricsServer;
let client: AnyClient;

beforeAll(async () => {
  metrics = new WorkflowMetrics({ defaultMetrics: false });
  store = new MemoryRunStore();
  engine = new WorkflowEngine({ tools, store, logger: quietLogger(), onEvent: (event) => metrics.observeEvent(event) });
  metrics.setSources({ activeRuns: () => engine.activeRunCount, pool: () => engine.poolStats() });
  coordinator = await createCoordinator({ engine, store, tools, metrics, logger: quietLogger() });
  server = await startMetricsServer({ registry: metrics.registry, port: 0 });
  client = new WorkflowServiceClient(`127.0.0.1:${coordinator.port}`, credentials.createInsecure()) as AnyClient;
});

afterAll(async () => {
  client?.close();
  await coordinator?.close(500);
  await server?.close();
  await engine?.close();
  await store?.close();
});

async function scrape(): Promise<string> {
  const response = await fetch(server.url);
  expect(response.status).toBe(200);
  return response.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no series ${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

describe('coordinator metrics', () => {
  it('counts runs, steps, streamed messages and open streams; no run or step ids in any label', async () => {
    await callUnary(client, 'createWorkflow', { document: 'id: two\nsteps:\n  - id: a\n    tool: echo\n  - id: b\n    tool: echo\n' });
    const { messages } = await collectStream(client, 'executeWorkflow', { run: { workflow: 'workflows/two' } });
    expect(messages.at(-1)).toMatchObject({ event: 'runFinished' });

    let release!: () => void;
    hold = new Promise((resolve) => (release = resolve));
    await callUnary(client, 'createWorkflow', { document: 'id: held\nsteps:\n  - id: h\n    tool: hold\n' });
    const run = await callUnary(client, 'startRun', { workflow: 'workflows/held' });
    const watching = collectStream(client, 'watchRun', { name: run.name });
    await expect.poll(async () => value(await scrape(), 'jaf_stream_subscribers')).toBe(1);
    expect(value(await scrape(), 'jaf_runs_active')).toBe(1);
    release();
    await watching;

    const text = await scrape();
    expect(value(text, 'jaf_runs_started_total')).toBe(2);
    expect(value(text, 'jaf_runs_finished_total{status="completed"}')).toBe(2);
    expect(value(text, 'jaf_step_duration_seconds_count{kind="tool",status="completed"}')).toBe(3);
    expect(value(text, 'jaf_stream_subscribers')).toBe(0);
    expect(value(text, 'jaf_runs_active')).toBe(0);
    const labels = 'grpc_type="server_stream",grpc_service="jaf.workflows.v1.WorkflowService",grpc_method="ExecuteWorkflow"';
    expect(value(text, `grpc_server_msg_sent_total{${labels}}`)).toBe(messages.length);
    expect(value(text, `grpc_server_handled_total{${labels},grpc_code="OK"}`)).toBe(1);
    expect(text).not.toContain(String(run.name).slice('runs/'.length));
  });
});

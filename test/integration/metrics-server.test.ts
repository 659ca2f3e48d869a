/**
 * The /metrics HTTP server on a real loopback port, scraped with global fetch; a real grpc-js server
 * instrumented with grpcMetricsInterceptor (behind the bearer-token interceptor) whose calls show up in
 * the scrape; and, where Debian's promtool is installed, a lint of the exposition.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:net';
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { bearerTokenInterceptor } from '../../src/grpc/auth.ts';
import { startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.ts';
import { grpcMetricsInterceptor } from '../../src/observability/grpc-metrics.ts';
import { WorkflowMetrics } from '../../src/observability/metrics.ts';

const servers: MetricsServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(metrics: WorkflowMetrics): Promise<MetricsServer> {
  const server = await startMetricsServer({ registry: metrics.registry, port: 0 });
  servers.push(server);
  return server;
}

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Samples of the Prometheus text format (enough of it for our label values: no escapes). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

function valueOf(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>>): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length, `${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

describe('the /metrics server', () => {
  it('serves the registry on GET /metrics with its content type, and HEAD without a body', async () => {
    const metrics = new WorkflowMetrics();
    metrics.observeEvent({
      type: 'run_started',
      seq: 1,
      runId: 'r',
      at: 0,
      workflowId: 'wf',
      workflowName: 'wf',
      definitionHash: 'h',
      totalSteps: 0,
      input: { workflowId: 'wf', userContext: null, initialData: {}, variables: {}, metadata: {} },
    });
    metrics.rpcStarted({ service: 'jaf.workflows.v1.WorkflowService', method: 'GetRun', type: 'unary' });
    const server = await start(metrics);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
    expect(server.port).toBeGreaterThan(0);

    const response = await fetch(server.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(metrics.registry.contentType);
    const body = await response.text();
    expect(body).toContain('# TYPE jaf_runs_started_total counter');
    expect(body).toMatch(/^jaf_runs_started_total 1$/m);
    expect(body).toContain('grpc_server_started_total{grpc_type="unary",grpc_service="jaf.workflows.v1.WorkflowService",grpc_method="GetRun"} 1');
    expect(body).toContain('# TYPE grpc_server_handling_seconds histogram');
    expect(body).toContain('process_cpu_user_seconds_total');

    const withQuery = await fetch(`${server.url}?name[]=jaf_runs_started_total`);
    expect(withQuery.status).toBe(200);
    await withQuery.text();

    const head = await fetch(server.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(metrics.registry.contentType);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await head.text()).toBe('');
  });

  it('answers 404 for other paths and 405 (with Allow) for other methods', async () => {
    const server = await start(new WorkflowMetrics({ defaultMetrics: false }));
    const base = `http://127.0.0.1:${server.port}`;
    for (const path of ['/', '/metric', '/metrics/', '/healthz']) {
      const response = await fetch(base + path);
      expect(response.status, path).toBe(404);
      expect(await response.text()).toContain('only /metrics is served');
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await fetch(server.url, { method, body: method === 'DELETE' ? undefined : 'x' });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
      await response.text();
    }
  });

  it('close() ends open connections, even one in the middle of a request, stops listening and is idempotent', async () => {
    const server = await startMetricsServer({ registry: new WorkflowMetrics({ defaultMetrics: false }).registry, port: 0 });
    // A keep-alive connection left idle after a complete response...
    const idle = await fetch(server.url);
    await idle.text();
    // ...and one that sent half a request: server.close() alone would wait for it (until requestTimeout).
    const partial = connect(server.port, '127.0.0.1');
    await new Promise<void>((resolve) => partial.once('connect', () => resolve()));
    partial.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const partialClosed = new Promise<void>((resolve) => partial.once('close', () => resolve()));
    partial.on('error', () => {});
    // Bounded far below the 10 s request timeout that would otherwise end the half-sent request.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      server.close().then(() => 'closed'),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still waiting'), 5_000))),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
    await partialClosed;
    await server.close();
    await expect(fetch(server.url)).rejects.toThrow();
  });

  it('rejects a bad port naming the field, and a port in use with the listen error', async () => {
    const registry = new WorkflowMetrics({ defaultMetrics: false }).registry;
    await expect(startMetricsServer({ registry, port: 70_000 })).rejects.toThrow('port must be an integer from 0 to 65535, got 70000');
    await expect(startMetricsServer({ registry, port: -1 })).rejects.toThrow(RangeError);
    const blocker = createServer();
    const port = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
    try {
      await expect(startMetricsServer({ registry, port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

// --- A real gRPC server instrumented by grpcMetricsInterceptor. -------------------------------------

type Json = Record<string, unknown>;
const json = {
  serialize: (value: Json) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as Json,
};
const echoService = {
  echo: {
    path: '/test.metrics.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  count: {
    path: '/test.metrics.Echo/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies ServiceDefinition;

const TOKEN = 'metrics-test-token';

describe('grpcMetricsInterceptor on a real gRPC server', () => {
  it('records started, handled (by status name), messages and latency; auth failures and cancels included', async () => {
    const metrics = new WorkflowMetrics({ defaultMetrics: false });
    const grpcServer = new Server({ interceptors: [grpcMetricsInterceptor(metrics), bearerTokenInterceptor(TOKEN)] });
    grpcServer.addService(echoService, {
      echo: (call: ServerUnaryCall<Json, Json>, callback: sendUnaryData<Json>) => {
        if (call.request.fail === true) callback({ code: status.INVALID_ARGUMENT, details: 'fail was set' });
        else callback(null, { echoed: call.request.text });
      },
      count: (call: ServerWritableStream<Json, Json>) => {
        const upTo = Number(call.request.upTo);
        if (upTo < 0) {
          // Writes one message, then waits for the client to cancel.
          call.write({ n: 0 });
          return;
        }
        for (let n = 1; n <= upTo; n += 1) call.write({ n });
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
    );
    const Client = makeGenericClientConstructor(echoService, 'Echo');
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
      echo(req: Json, md: Metadata, cb: (err: ServiceError | null, res?: Json) => void): void;
      count(req: Json, md: Metadata): NodeJS.EventEmitter & { cancel(): void };
      close(): void;
    };
    const authorized = new Metadata();
    authorized.set('authorization', `Bearer ${TOKEN}`);
    const echo = (req: Json, md: Metadata) => new Promise<ServiceError | null>((resolve) => client.echo(req, md, (err) => resolve(err)));
    const count = (req: Json) =>
      new Promise<number>((resolve, reject) => {
        let received = 0;
        const stream = client.count(req, authorized);
        stream.on('data', () => (received += 1));
        stream.on('error', reject);
        stream.on('end', () => resolve(received));
      });
    const metricsServer = await start(metrics);
    const scrape = async () => parseExposition(await (await fetch(metricsServer.url)).text());
    try {
      expect(await echo({ text: 'hi' }, authorized)).toBeNull();
      expect((await echo({ fail: true }, authorized))?.code).toBe(status.INVALID_ARGUMENT);
      expect((await echo({ text: 'no token' }, new Metadata()))?.code).toBe(status.UNAUTHENTICATED);
      expect(await count({ upTo: 3 })).toBe(3);
      // A stream the client cancels after its first message.
      const cancelled = await new Promise<ServiceError>((resolve) => {
        const stream = client.count({ upTo: -1 }, authorized);
        stream.once('data', () => stream.cancel());
        stream.on('error', (err: ServiceError) => resolve(err));
      });
      expect(cancelled.code).toBe(status.CANCELLED);

      const echoLabels = { grpc_type: 'unary', grpc_service: 'test.metrics.Echo', grpc_method: 'Echo' };
      const countLabels = { grpc_type: 'server_stream', grpc_service: 'test.metrics.Echo', grpc_method: 'Count' };
      // The server learns of the cancel asynchronously: poll (bounded) until it is recorded.
      let samples = await scrape();
      for (let i = 0; i < 200 && valueOf(samples, 'grpc_server_handled_total', { ...countLabels, grpc_code: 'CANCELLED' }) === undefined; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        samples = await scrape();
      }
      expect(valueOf(samples, 'grpc_server_started_total', echoLabels)).toBe(3);
      expect(valueOf(samples, 'grpc_server_handled_total', { ...echoLabels, grpc_code: 'OK' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_handled_total', { ...echoLabels, grpc_code: 'INVALID_ARGUMENT' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_handled_total', { ...echoLabels, grpc_code: 'UNAUTHENTICATED' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_msg_sent_total', echoLabels)).toBe(1);
      expect(valueOf(samples, 'grpc_server_handling_seconds_count', { ...echoLabels, grpc_code: 'OK' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_started_total', countLabels)).toBe(2);
      expect(valueOf(samples, 'grpc_server_msg_received_total', countLabels)).toBe(2);
      expect(valueOf(samples, 'grpc_server_msg_sent_total', countLabels)).toBe(4);
      expect(valueOf(samples, 'grpc_server_handled_total', { ...countLabels, grpc_code: 'OK' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_handled_total', { ...countLabels, grpc_code: 'CANCELLED' })).toBe(1);
      expect(valueOf(samples, 'grpc_server_handling_seconds_bucket', { ...countLabels, grpc_code: 'OK', le: '+Inf' })).toBe(1);
    } finally {
      client.close();
      grpcServer.forceShutdown();
    }
  });
});

// --- promtool, where installed (Debian package `prometheus`). ---------------------------------------

/** PROMTOOL names the binary explicitly; else it is looked up on PATH. */
function findPromtool(): string | undefined {
  if (process.env.PROMTOOL !== undefined && process.env.PROMTOOL !== '') return process.env.PROMTOOL;
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() !== '' ? found.stdout.trim() : undefined;
}
const promtool = findPromtool();

describe('promtool checks, where promtool is installed', () => {
  it.skipIf(promtool === undefined)('promtool check metrics exits 0 on /metrics (nodejs_* filtered: prom-client names some gauges _total)', async () => {
    const metrics = new WorkflowMetrics();
    metrics.setSources({ activeRuns: () => 2, pool: () => ({ threads: 2, inFlight: 3, waiting: 1, completed: 7, utilization: 0.4, batches: 1, batchedTasks: 3 }) });
    metrics.observePoolWait(0.01);
    metrics.streamOpened();
    metrics.observeModelUsage({ model: 'm', agent: 'a', promptTokens: 3, completionTokens: 4 });
    metrics.observeModelRequest({ model: 'm', agent: 'a', outcome: 'ok' });
    const call = { service: 'jaf.workflows.v1.WorkflowService', method: 'StartRun', type: 'unary' } as const;
    metrics.rpcStarted(call);
    metrics.rpcMessageReceived(call);
    metrics.rpcMessageSent(call);
    metrics.rpcHandled(call, status.OK, 0.003);
    const server = await start(metrics);
    const body = await (await fetch(server.url)).text();
    const filtered = body
      .split('\n')
      .filter((line) => !/^(# (HELP|TYPE) )?nodejs_/.test(line))
      .join('\n');
    expect(filtered).toContain('jaf_pool_queue_depth 1');
    const result = spawnSync(promtool!, ['check', 'metrics'], { input: filtered, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect(`${result.stdout}${result.stderr}`.trim()).toBe('');
    expect(result.status).toBe(0);
  });

  it.skipIf(promtool === undefined)('every Grafana dashboard query is valid PromQL (promtool check rules)', () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../grafana/jaf-workflows-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(15);
    // Grafana's variables, as Grafana would substitute them.
    const rules = exprs.map((expr, i) => ({ record: `jaf_dashboard:query_${i}`, expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*') }));
    const dir = mkdtempSync(join(tmpdir(), 'jaf-dashboard-'));
    try {
      const file = join(dir, 'rules.json');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const result = spawnSync(promtool!, ['check', 'rules', file], { encoding: 'utf8' });
      expect(result.error).toBeUndefined();
      expect(result.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

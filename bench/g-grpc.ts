/**
 * G1: durable 10-step workflows through the coordinator's ExecuteWorkflow with 64 concurrent clients
 * (each its own HTTP/2 connection, in a client worker thread): steps/s, beside the same workflows run
 * in-process on the same engine and store with 64 in flight (the D2 setting), in the same round.
 *
 * G2: latency from a step's commit to its RunEvent reaching a client (one client running workflows
 * back to back): p50 and p99, beside a raw grpc-js server stream of the same messages on the same
 * machine (the transport's own share of that latency).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Server, ServerCredentials, credentials, type Client, type ServerWritableStream } from '@grpc/grpc-js';
import { parseWorkflowDocument } from '../src/definition/declarative/index.ts';
import { createCoordinator } from '../src/grpc/coordinator.ts';
import { runEventToProto } from '../src/grpc/mapping.ts';
import { WorkflowServiceClient, workflowServiceDefinition } from '../src/grpc/proto.ts';
import { SqliteRunStore, Tool, WorkflowContext, WorkflowEngine, type RunEvent } from '../src/index.ts';
import { siblingModule } from '../src/tools/tool.ts';
import { expectCompleted, silentLogger, timeMs, withConcurrency, type Progress } from './common.ts';
import type { ClientJob, ClientReport } from './grpc-clients.ts';
import { verdictOf, type FigureResult, type Target } from './report.ts';
import { fmt, fmtSummary, pairedRatios, summarize } from './stats.ts';

const steps = 10;
const DOCUMENT = `id: grpc-bench\nsteps:\n${Array.from({ length: steps }, (_v, i) => `  - id: s${i}\n    tool: noop\n`).join('')}`;
const now = () => performance.timeOrigin + performance.now();

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One client worker thread, reused for every job. */
class ClientThread {
  readonly #worker = new Worker(siblingModule(import.meta.url, './grpc-clients'));

  run(job: ClientJob): Promise<ClientReport> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => {
        this.#worker.off('message', answered);
        reject(err);
      };
      const answered = (answer: { ok: true; report: ClientReport } | { ok: false; error: string }) => {
        this.#worker.off('error', failed);
        if (answer.ok) resolve(answer.report);
        else reject(new Error(`client thread: ${answer.error}`));
      };
      this.#worker.once('message', answered);
      this.#worker.once('error', failed);
      this.#worker.postMessage(job);
    });
  }

  close(): Promise<number> {
    return this.#worker.terminate();
  }
}

async function coordinatorSetup() {
  const dir = mkdtempSync(join(tmpdir(), 'jaf-bench-grpc-'));
  const store = SqliteRunStore.open({ path: join(dir, 'runs.db') });
  /** Commit times by `runs/{id}#{seq}` while G2 measures (events are published right after their commit). */
  let commits: Map<string, number> | undefined;
  const tools = [new Tool({ name: 'noop', execute: () => undefined })];
  const engine = new WorkflowEngine({
    tools,
    store,
    logger: silentLogger(),
    onEvent: (event: RunEvent) => commits?.set(`runs/${event.runId}#${event.seq}`, now()),
  });
  const coordinator = await createCoordinator({ engine, store, tools, logger: silentLogger() });
  const address = `127.0.0.1:${coordinator.port}`;
  const client = new WorkflowServiceClient(address, credentials.createInsecure()) as Client & Record<string, (...args: unknown[]) => unknown>;
  await new Promise((resolve, reject) => client.createWorkflow!({ document: DOCUMENT }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
  client.close();
  const workflow = parseWorkflowDocument(DOCUMENT, { tools });
  const ctx = new WorkflowContext({ workflowId: 'bench-g' });
  return {
    address,
    inProcess: async () => expectCompleted(await engine.executeWorkflow(workflow, ctx)),
    recordCommits(on: boolean): Map<string, number> | undefined {
      const taken = commits;
      commits = on ? new Map() : undefined;
      return taken;
    },
    async close() {
      await coordinator.close(1000);
      await engine.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bare grpc-js WatchRun that streams `count` RunEvent messages one timer tick apart, noting each send time. */
async function rawStreamServer(count: number) {
  const sent = new Map<string, number>();
  const template = runEventToProto({ type: 'step_started', seq: 1, runId: 'raw', at: Date.now(), path: 's1', parent: undefined, stepId: 's1', kind: 'tool', attempt: 1 });
  const server = new Server();
  server.addService(workflowServiceDefinition, {
    watchRun: (call: ServerWritableStream<unknown, unknown>) => {
      let seq = 0;
      const next = () => {
        if (call.cancelled) return;
        if (seq === count) {
          call.end();
          return;
        }
        seq += 1;
        sent.set(`runs/raw#${seq}`, now());
        call.write({ ...template, seq: String(seq), run: 'runs/raw' });
        // Paced (a timer per message), as a run's events come one commit at a time, not as a flood.
        setTimeout(next, 0);
      };
      next();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, sent, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/**
 * A bare grpc-js ExecuteWorkflow: each call gets the messages of a finished 10-step run (the same
 * RunEvents, mapped the same way), written at once, then ends. No engine, no store: what the transport
 * alone allows the same 64 clients on this machine, the ceiling any coordinator here can reach.
 */
async function rawExecuteServer() {
  let calls = 0;
  const server = new Server();
  server.addService(workflowServiceDefinition, {
    executeWorkflow: (call: ServerWritableStream<unknown, unknown>) => {
      const runId = `raw-${++calls}`;
      const at = Date.now();
      const events: RunEvent[] = [
        { type: 'run_started', seq: 1, runId, at, workflowId: 'grpc-bench', workflowName: 'grpc-bench', definitionHash: 'raw', totalSteps: steps, input: { workflowId: 'raw', userContext: null, initialData: {}, variables: {}, metadata: {} } },
      ];
      for (let i = 0; i < steps; i++) {
        const path = `s${i}`;
        events.push({ type: 'step_started', seq: events.length + 1, runId, at, path, parent: undefined, stepId: path, kind: 'tool', attempt: 1 });
        events.push({
          type: 'step_completed',
          seq: events.length + 1,
          runId,
          at,
          path,
          parent: undefined,
          result: { stepId: path, path, kind: 'tool', status: 'completed', output: undefined, executionTimeMs: 0.01, attempts: 1 },
        });
      }
      events.push({ type: 'run_completed', seq: events.length + 1, runId, at });
      for (const event of events) call.write(runEventToProto(event));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

function latencies(sent: ReadonlyMap<string, number>, arrivals: Readonly<Record<string, number>>): number[] {
  const out: number[] = [];
  for (const [key, at] of Object.entries(arrivals)) {
    const from = sent.get(key);
    if (from !== undefined) out.push(at - from);
  }
  if (out.length === 0) throw new Error('G2: no event could be matched to its commit');
  return out;
}

export async function benchG(rounds: number, warmup: number, progress: Progress): Promise<FigureResult[]> {
  const inFlight = 64;
  const runsPerRound = 320;
  const latencyRuns = 60;
  const setup = await coordinatorSetup();
  const clients = new ClientThread();
  const g1: number[] = [];
  const d2: number[] = [];
  const g2p50: number[] = [];
  const g2p99: number[] = [];
  const rawP50: number[] = [];
  const rawP99: number[] = [];
  const transport: number[] = [];
  const transportServer = await rawExecuteServer();
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      const inProcessMs = await timeMs(() => withConcurrency(runsPerRound, inFlight, setup.inProcess));
      const remote = await clients.run({ address: setup.address, workflow: 'workflows/grpc-bench', clients: inFlight, runs: runsPerRound, keepArrivals: false, method: 'executeWorkflow' });
      const bare = await clients.run({ address: transportServer.address, workflow: 'workflows/raw', clients: inFlight, runs: runsPerRound, keepArrivals: false, method: 'executeWorkflow' });

      setup.recordCommits(true);
      const measured = await clients.run({ address: setup.address, workflow: 'workflows/grpc-bench', clients: 1, runs: latencyRuns, keepArrivals: true, method: 'executeWorkflow' });
      const lat = latencies(setup.recordCommits(false)!, measured.arrivals);

      const raw = await rawStreamServer(latencyRuns * (2 * steps + 2));
      const rawReport = await clients.run({ address: raw.address, workflow: '', clients: 1, runs: 1, keepArrivals: true, method: 'watchRun' });
      await raw.close();
      const rawLat = latencies(raw.sent, rawReport.arrivals);
      if (round < warmup) continue;
      g1.push((runsPerRound * steps) / (remote.ms / 1000));
      transport.push((runsPerRound * steps) / (bare.ms / 1000));
      d2.push((runsPerRound * steps) / (inProcessMs / 1000));
      g2p50.push(percentile(lat, 50));
      g2p99.push(percentile(lat, 99));
      rawP50.push(percentile(rawLat, 50));
      rawP99.push(percentile(rawLat, 99));
      progress(
        `  G round ${round - warmup + 1}/${rounds}: gRPC ${fmt(g1.at(-1)!)} steps/s vs in-process ${fmt(d2.at(-1)!)}; commit→client p50 ${g2p50.at(-1)!.toFixed(2)} ms p99 ${g2p99.at(-1)!.toFixed(2)} ms (raw stream p50 ${rawP50.at(-1)!.toFixed(2)}, p99 ${rawP99.at(-1)!.toFixed(2)})`,
      );
    }
  } finally {
    await clients.close();
    await transportServer.close();
    await setup.close();
  }
  const g1Summary = summarize(g1);
  const g1Ratio = summarize(pairedRatios(g1, d2));
  const g1Target: Target = { on: 'ratio', op: '>=', value: 0.5, text: '≥ 0.5× the in-process durable figure' };
  const g2Summary = summarize(g2p99);
  const g2Ratio = summarize(pairedRatios(g2p99, rawP99));
  const g2Target: Target = { on: 'figure', op: '<=', value: 5, text: 'p99 ≤ 5 ms' };
  return [
    {
      id: 'G1',
      title: `durable ${steps}-step workflows through ExecuteWorkflow, ${inFlight} concurrent clients (own connections, client thread), ${runsPerRound} runs per round`,
      figure: { label: 'gRPC durable steps', unit: 'steps/s', summary: g1Summary },
      baseline: { label: `the same workflows in-process, ${inFlight} in flight, same engine and store (D2 setting)`, unit: 'steps/s', summary: summarize(d2) },
      ratio: { label: 'gRPC / in-process', summary: g1Ratio },
      target: g1Target,
      verdict: verdictOf(g1Target, g1Summary, g1Ratio),
      notes: [
        'each run streams all its events (22) to its client; clients run in a worker thread, so client and coordinator each get a core',
        `transport alone (bare grpc-js ExecuteWorkflow writing the same 22 messages per call, no engine, no store), same clients and rounds: ${fmtSummary(summarize(transport), 'steps/s')}; / in-process, paired: ${fmtSummary(summarize(pairedRatios(transport, d2)), '×')}; coordinator / transport alone: ${fmtSummary(summarize(pairedRatios(g1, transport)), '×')}`,
      ],
    },
    {
      id: 'G2',
      title: `commit → RunEvent at the client, one client running ${latencyRuns} workflows back to back`,
      figure: { label: 'commit to client', unit: 'ms p99', summary: g2Summary },
      baseline: { label: 'raw grpc-js server stream, send to client', unit: 'ms p99', summary: summarize(rawP99) },
      ratio: { label: 'coordinator / raw stream (p99)', summary: g2Ratio },
      target: g2Target,
      verdict: verdictOf(g2Target, g2Summary, g2Ratio),
      notes: [`p50 ${fmt(summarize(g2p50).median)} ms (raw stream p50 ${fmt(summarize(rawP50).median)} ms)`, 'times from performance.timeOrigin + now() on both threads'],
    },
  ];
}

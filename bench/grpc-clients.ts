/**
 * The client side of G1/G2, in a worker thread so that client work does not share the coordinator's
 * event loop (on this 2-core machine, clients get one core and the coordinator the other, as they
 * would on separate hosts). Each client has its own channel (a local subchannel pool), so the
 * coordinator sees `clients` HTTP/2 connections.
 *
 * Each client runs ExecuteWorkflow to the end, again and again, until `runs` runs are done, and for
 * every RunEvent notes when it arrived (performance.timeOrigin + now(): comparable across threads).
 */
import { parentPort } from 'node:worker_threads';
import { credentials, type Client, type ClientReadableStream } from '@grpc/grpc-js';
import { WorkflowServiceClient } from '../src/grpc/proto.ts';

export interface ClientJob {
  readonly address: string;
  /** ExecuteWorkflow of this workflow; or, for the raw baseline, WatchRun of `raw` (any name). */
  readonly workflow: string;
  readonly clients: number;
  readonly runs: number;
  readonly keepArrivals: boolean;
  readonly method: 'executeWorkflow' | 'watchRun';
}

export interface ClientReport {
  readonly ms: number;
  readonly events: number;
  /** `${run}#${seq}` → arrival time (epoch ms, sub-ms precision); only when `keepArrivals`. */
  readonly arrivals: Record<string, number>;
}

type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

const now = () => performance.timeOrigin + performance.now();
/** How long a client may take to connect before the job fails. */
const CONNECT_TIMEOUT_MS = 10_000;

async function main(job: ClientJob): Promise<ClientReport> {
  const clients = Array.from(
    { length: job.clients },
    () => new WorkflowServiceClient(job.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as AnyClient,
  );
  const arrivals: Record<string, number> = {};
  let events = 0;
  let started = 0;
  const execute = (client: AnyClient): Promise<void> =>
    new Promise((resolve, reject) => {
      const request = job.method === 'executeWorkflow' ? { run: { workflow: job.workflow } } : { name: 'runs/raw' };
      const call = client[job.method]!(request) as ClientReadableStream<{ seq: string; run: string; event: string; runFinished?: { status: string } }>;
      call.on('data', (event) => {
        events += 1;
        if (job.keepArrivals) arrivals[`${event.run}#${event.seq}`] = now();
        if (event.event === 'runFinished' && event.runFinished?.status !== 'RUN_STATUS_COMPLETED') reject(new Error(`run ${event.run} ended ${event.runFinished?.status}`));
      });
      call.on('error', reject);
      call.on('end', () => resolve());
    });
  const lane = async (client: AnyClient) => {
    while (started < job.runs) {
      started += 1;
      await execute(client);
    }
  };
  let t0 = performance.now();
  try {
    // Connections are set up before the clock starts: the figure is runs on live connections, as a
    // client keeping its channel would see, not 64 TCP + HTTP/2 handshakes per round.
    await Promise.all(clients.map((client) => new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + CONNECT_TIMEOUT_MS, (err) => (err ? reject(err) : resolve())))));
    t0 = performance.now();
    await Promise.all(clients.map(lane));
  } finally {
    for (const client of clients) client.close();
  }
  return { ms: performance.now() - t0, events, arrivals };
}

if (parentPort !== null) {
  const port = parentPort;
  port.on('message', (job: ClientJob) => {
    main(job).then(
      (report) => port.postMessage({ ok: true, report }),
      (err: unknown) => port.postMessage({ ok: false, error: String((err as Error)?.stack ?? err) }),
    );
  });
}

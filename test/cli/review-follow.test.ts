/**
 * Review regression for follow() (jafw watch/run): a stream that breaks after the run's terminal event
 * was printed has nothing left to resume; the command reports the final status instead of failing.
 * A real grpc-js server whose WatchRun sends the terminal event and then ends the call UNAVAILABLE, as a
 * coordinator closing at that moment does.
 */
import { Server, ServerCredentials, status, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/cli/client.ts';
import { watch } from '../../src/cli/commands.ts';
import { runEventToProto } from '../../src/grpc/mapping.ts';
import { workflowServiceDefinition } from '../../src/grpc/proto.ts';

let server: Server;
let port: number;
let watchCalls = 0;

beforeAll(async () => {
  const handlers: UntypedServiceImplementation = {
    watchRun(call: ServerWritableStream<Record<string, unknown>, unknown>) {
      watchCalls += 1;
      call.write(runEventToProto({ type: 'run_completed', seq: 1, runId: 'r-1', at: Date.now() }));
      call.emit('error', { code: status.UNAVAILABLE, details: 'shutting down' });
    },
  };
  server = new Server();
  server.addService(workflowServiceDefinition, handlers);
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))));
});

afterAll(() => server?.forceShutdown());

describe('follow after the terminal event (review)', () => {
  it('answers the final status when the stream breaks after the run finished', async () => {
    let out = '';
    let err = '';
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) } };
    const conn = connect(`127.0.0.1:${port}`, undefined);
    try {
      const code = await watch(conn, 'r-1', undefined, io, { retryBaseMs: 1, retryMaxMs: 2 });
      expect({ code, err }).toEqual({ code: 0, err: '' });
      expect(out).toContain('Final status: completed');
      expect(watchCalls).toBe(1);
    } finally {
      conn.close();
    }
  });
});

import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WorkflowLogger } from 'jaf-workflows';

/** A WorkflowLogger that writes nothing: keeps test output readable. */
export function quietLogger(): WorkflowLogger {
  return new WorkflowLogger({ logger: pino({ level: 'silent' }) });
}

/** A pino logger writing parsed JSON lines into `lines`, for assertions on what was logged. */
export function logSink(level = 'debug'): { logger: WorkflowLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: new WorkflowLogger({ logger: pino({ level }, stream) }), lines };
}

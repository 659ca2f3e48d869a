import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WorkflowLogger } from 'jaf-workflows';

/** A WorkflowLogger that writes nothing: keeps test output readable. */
export function quietLogger(): WorkflowLogger {
  return new WorkflowLogger({ logger: pino({ level: 'silent' }) });
}

/** A pino logger writing parsed JSON lines into `lines`, for assertions on what was logged. */
export function logSink(level = 'debug'): { logger: WorkflowLogger; pino: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const raw = pino({ level }, stream);
  return { logger: new WorkflowLogger({ logger: raw }), pino: raw, lines };
}

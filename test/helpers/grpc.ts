/** Promise wrappers over a real grpc-js WorkflowService client, for tests. */
import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { decodeRichStatus, STATUS_DETAILS_METADATA_KEY, type RichStatus } from '../../src/grpc/rich-status.ts';

export type Msg = Record<string, unknown>;
export type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

export function bearer(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

export function callUnary(client: AnyClient, method: string, request: Msg, metadata = new Metadata()): Promise<Msg> {
  return new Promise((resolve, reject) => {
    client[method]!(request, metadata, { deadline: Date.now() + 10_000 }, (error: ServiceError | null, response: Msg) => (error ? reject(error) : resolve(response)));
  });
}

/** The error of a call that must fail (the test fails if it succeeds). */
export function expectFailure(promise: Promise<unknown>): Promise<ServiceError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as ServiceError,
  );
}

export function collectStream(client: AnyClient, method: string, request: Msg, metadata = new Metadata()): Promise<{ messages: Msg[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const messages: Msg[] = [];
    const call = client[method]!(request, metadata, { deadline: Date.now() + 10_000 }) as NodeJS.EventEmitter;
    call.on('data', (message: Msg) => messages.push(message));
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages }));
  });
}

/** The google.rpc.Status a failed call carried in `grpc-status-details-bin`. */
export function richStatusOf(error: ServiceError): RichStatus {
  const [bytes] = error.metadata.get(STATUS_DETAILS_METADATA_KEY);
  if (!Buffer.isBuffer(bytes)) throw new Error(`the error carries no ${STATUS_DETAILS_METADATA_KEY}`);
  return decodeRichStatus(bytes);
}

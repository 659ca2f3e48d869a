/** The connection to a coordinator: a grpc-js WorkflowService client plus promise/stream helpers. */
import { Metadata, credentials, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { WorkflowServiceClient } from '../grpc/proto.ts';

export type Msg = Record<string, unknown>;
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

export interface Connection {
  unary(method: string, request: Msg): Promise<Msg>;
  /** Calls a server-streaming method; `onMessage` for each message; resolves when the stream ends. */
  stream(method: string, request: Msg, onMessage: (message: Msg) => void): Promise<void>;
  close(): void;
}

export interface ClientTls {
  /** PEM CA bundle to trust (default: the system's). */
  readonly ca?: Buffer;
  /** mTLS: the client's PEM certificate and key. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface ConnectOptions {
  /** Connect with TLS. */
  readonly tls?: ClientTls;
  /** Deadline of unary calls, ms (default 30,000). */
  readonly timeoutMs?: number;
}

/** As the server's defaults (src/grpc/server-config.ts): responses up to 16 MiB, requests up to 4 MiB. */
const CLIENT_CHANNEL_OPTIONS = { 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_send_message_length': 4 * 1024 * 1024 };

export function connect(address: string, token: string | undefined, options: ConnectOptions = {}): Connection {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const tls = options.tls;
  const channel = tls === undefined ? credentials.createInsecure() : credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
  const client = new WorkflowServiceClient(address, channel, CLIENT_CHANNEL_OPTIONS) as AnyClient;
  const metadata = (): Metadata => {
    const md = new Metadata();
    if (token !== undefined && token !== '') md.set('authorization', `Bearer ${token}`);
    return md;
  };
  return {
    unary: (method, request) =>
      new Promise((resolve, reject) => {
        client[method]!(request, metadata(), { deadline: Date.now() + timeoutMs }, (error: ServiceError | null, response: Msg) =>
          error ? reject(error) : resolve(response),
        );
      }),
    stream: (method, request, onMessage) =>
      new Promise((resolve, reject) => {
        const call = client[method]!(request, metadata()) as ClientReadableStream<Msg>;
        let failed = false;
        call.on('data', (message: Msg) => {
          try {
            onMessage(message);
          } catch (err) {
            failed = true;
            call.cancel();
            reject(err);
          }
        });
        call.on('error', (error: ServiceError) => {
          if (!failed) reject(error);
          failed = true;
        });
        call.on('end', () => {
          if (!failed) resolve();
        });
      }),
    close: () => client.close(),
  };
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** `NOT_FOUND: run runs/x not found` style text for a gRPC failure. */
export function describeServiceError(err: ServiceError): string {
  const name = status[err.code] ?? String(err.code);
  return `${name} (${err.code}): ${err.details || err.message}`;
}

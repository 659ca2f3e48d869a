/**
 * How the coordinator's gRPC server listens: TLS or mTLS credentials, explicit message size limits and
 * keepalive (ecosystem.md §1.4, §1.5), and the refusal to expose an unauthenticated plaintext server
 * beyond loopback. Every limit has a documented default and a checked range.
 */
import { readFileSync } from 'node:fs';
import { ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { CoordinatorErrorCode } from './status.ts';

export interface TlsOptions {
  /** PEM certificate chain (or a path to it) the server presents. */
  readonly cert: string | Buffer;
  /** PEM private key (or a path to it). */
  readonly key: string | Buffer;
  /** mTLS: PEM CA bundle (or a path) that client certificates must chain to; clients without one are refused. */
  readonly clientCa?: string | Buffer;
}

export interface ServerLimits {
  /** Largest request message, bytes (default 4 MiB; at most 64 MiB). Larger ones: RESOURCE_EXHAUSTED. */
  readonly maxReceiveMessageBytes?: number;
  /** Largest response message, bytes (default 16 MiB; at most 64 MiB). */
  readonly maxSendMessageBytes?: number;
  /** Ping an idle connection this often, ms (default 60,000; at least 10,000): keeps streams alive through NAT and proxies. */
  readonly keepaliveTimeMs?: number;
  /** Close a connection whose ping is not answered within this, ms (default 20,000). */
  readonly keepaliveTimeoutMs?: number;
  /** Concurrent calls per connection (default 1,000). */
  readonly maxConcurrentStreams?: number;
}

export const defaultServerLimits = {
  maxReceiveMessageBytes: 4 * 1024 * 1024,
  maxSendMessageBytes: 16 * 1024 * 1024,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxConcurrentStreams: 1000,
} as const satisfies Required<ServerLimits>;

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class ServerConfigError extends Error {
  readonly code = CoordinatorErrorCode.INVALID_REQUEST;
  constructor(message: string) {
    super(message);
    this.name = 'ServerConfigError';
  }
}

function integerIn(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min || n > max) throw new ServerConfigError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  return n;
}

/** grpc-js channel options for the limits (each checked, naming the option and its range). */
export function serverChannelOptions(limits: ServerLimits = {}): ChannelOptions {
  const d = defaultServerLimits;
  return {
    'grpc.max_receive_message_length': integerIn('maxReceiveMessageBytes', limits.maxReceiveMessageBytes, d.maxReceiveMessageBytes, 1024, MAX_MESSAGE_BYTES),
    'grpc.max_send_message_length': integerIn('maxSendMessageBytes', limits.maxSendMessageBytes, d.maxSendMessageBytes, 1024, MAX_MESSAGE_BYTES),
    'grpc.keepalive_time_ms': integerIn('keepaliveTimeMs', limits.keepaliveTimeMs, d.keepaliveTimeMs, 10_000, 24 * 3600_000),
    'grpc.keepalive_timeout_ms': integerIn('keepaliveTimeoutMs', limits.keepaliveTimeoutMs, d.keepaliveTimeoutMs, 1000, 600_000),
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_concurrent_streams': integerIn('maxConcurrentStreams', limits.maxConcurrentStreams, d.maxConcurrentStreams, 1, 100_000),
  };
}

function pem(value: string | Buffer, what: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value.includes('-----BEGIN')) return Buffer.from(value, 'utf8');
  try {
    return readFileSync(value);
  } catch (err) {
    throw new ServerConfigError(`tls.${what}: cannot read ${value}: ${(err as Error).message}`);
  }
}

export function serverCredentials(tls: TlsOptions | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const clientCa = tls.clientCa === undefined ? null : pem(tls.clientCa, 'clientCa');
  return ServerCredentials.createSsl(clientCa, [{ cert_chain: pem(tls.cert, 'cert'), private_key: pem(tls.key, 'key') }], clientCa !== null);
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses a listen address reachable from other machines when nothing authenticates callers: anyone who
 * reached it could run tools. A token or TLS (mTLS, or TLS with a token) lifts it; so does an explicit opt-in.
 */
export interface Exposure {
  readonly token: boolean;
  readonly tls: boolean;
  readonly allowInsecureRemote: boolean;
}

/** How the refusal tells the caller to secure the server or opt out (the CLI names its flags). */
export interface ExposureAdvice {
  readonly secure: string;
  readonly optOut: string;
}

const codeAdvice: ExposureAdvice = { secure: 'Set a token or TLS', optOut: 'allowInsecureRemote' };

export function checkExposure(host: string, secured: Exposure, advice: ExposureAdvice = codeAdvice): void {
  if (isLoopbackHost(host) || secured.token || secured.tls || secured.allowInsecureRemote) return;
  throw new ServerConfigError(
    `refusing to listen on ${host} with neither a token nor TLS: anyone who can reach it could run tools. ${advice.secure}, or ${advice.optOut} to accept the risk.`,
  );
}

/**
 * Serves a registry's metrics on a plain HTTP port next to the gRPC one (which speaks HTTP/2 only;
 * ecosystem.md §3.3): GET or HEAD /metrics, nothing else.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  readonly registry: Registry;
  /** Default 127.0.0.1: metrics stay on loopback unless asked otherwise. */
  readonly host?: string;
  /** 0 picks a free port (see `port` on the result). */
  readonly port: number;
}

export interface MetricsServer {
  readonly port: number;
  /** The scrape address, `http://host:port/metrics`. */
  readonly url: string;
  /** Stops listening and drops open connections (keep-alive ones included). Idempotent. */
  close(): Promise<void>;
}

export const MetricsServerLimits = {
  /** Scrapers are few; more concurrent connections than this are refused. */
  maxConnections: 64,
  /** A request must arrive whole within this long, in ms. */
  requestTimeoutMs: 10_000,
  /** Idle keep-alive connections are closed after this long, in ms. */
  keepAliveTimeoutMs: 5_000,
} as const;

export const METRICS_PATH = '/metrics';

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, port } = options;
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError(`startMetricsServer: port must be an integer from 0 to 65535, got ${port}`);
  if (typeof host !== 'string' || host === '') throw new TypeError('startMetricsServer: host must be a non-empty string');

  const server = createServer({ requestTimeout: MetricsServerLimits.requestTimeoutMs, keepAliveTimeout: MetricsServerLimits.keepAliveTimeoutMs }, (req, res) => {
    void respond(registry, req, res);
  });
  server.maxConnections = MetricsServerLimits.maxConnections;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('startMetricsServer: the server has no TCP address');
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    url: `http://${urlHost}:${address.port}${METRICS_PATH}`,
    close: () =>
      (closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // close() alone waits for keep-alive connections to go idle and time out.
        server.closeAllConnections();
      })),
  };
}

async function respond(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (path !== METRICS_PATH) return send(res, 404, `not found: only ${METRICS_PATH} is served\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, `method ${req.method ?? ''} not allowed: use GET or HEAD\n`);
  }
  let body: string;
  try {
    body = await registry.metrics();
  } catch (err) {
    return send(res, 500, `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  res.statusCode = 200;
  res.setHeader('Content-Type', registry.contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

function send(res: ServerResponse, statusCode: number, text: string): void {
  res.statusCode = statusCode;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

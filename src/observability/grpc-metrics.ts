/**
 * gRPC server metrics (go-grpc-prometheus names, recorded in WorkflowMetrics) as a grpc-js server
 * interceptor: calls started, messages each way, and how each call ended and how long it took.
 */
import { ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder, status as GrpcStatus, type ServerInterceptor } from '@grpc/grpc-js';
import type { GrpcMethodType, RpcCall, WorkflowMetrics } from './metrics.ts';

/** The labels of a call, from its method path (`/package.Service/Method`) and streaming flags. */
export function rpcCallOf(path: string, requestStream: boolean, responseStream: boolean): RpcCall {
  const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
  const type: GrpcMethodType = requestStream ? (responseStream ? 'bidi_stream' : 'client_stream') : responseStream ? 'server_stream' : 'unary';
  return { service: match?.[1] ?? 'unknown', method: match?.[2] ?? 'unknown', type };
}

/**
 * A grpc-js server interceptor recording every call in `metrics`. List it FIRST in the server's
 * `interceptors` (grpc-js puts the first one nearest the transport), so calls that a later
 * interceptor ends (an auth failure) are counted too. A call the client cancels, or whose deadline
 * passes, counts as CANCELLED or DEADLINE_EXCEEDED: grpc-js sends neither through interceptors.
 */
export function grpcMetricsInterceptor(metrics: WorkflowMetrics): ServerInterceptor {
  return (descriptor, call) => {
    const rpc = rpcCallOf(descriptor.path, descriptor.requestStream, descriptor.responseStream);
    const startedAt = performance.now();
    let handled = false;
    const finish = (code: number) => {
      if (handled) return;
      handled = true;
      metrics.rpcHandled(rpc, code, (performance.now() - startedAt) / 1000);
    };
    metrics.rpcStarted(rpc);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMessage((message, next) => {
        metrics.rpcMessageReceived(rpc);
        next(message);
      })
      .withOnCancel(() => finish(deadlinePassed(call.getDeadline()) ? GrpcStatus.DEADLINE_EXCEEDED : GrpcStatus.CANCELLED))
      .build();
    const responder = new ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendMessage((message, next) => {
        metrics.rpcMessageSent(rpc);
        next(message);
      })
      .withSendStatus((status, next) => {
        finish(status.code);
        next(status);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}

function deadlinePassed(deadline: Date | number): boolean {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) && at <= Date.now();
}

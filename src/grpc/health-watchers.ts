/**
 * Open grpc.health.v1.Health/Watch streams, so that shutdown can end them: grpc-health-check keeps them
 * open forever, and tryShutdown waits for every open stream (grpc-node#1458), which would hold a
 * graceful close until its forced fallback.
 */
import {
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type StatusObject,
} from '@grpc/grpc-js';

const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';

export class HealthWatchers {
  readonly #open = new Set<ServerInterceptingCallInterface>();

  readonly interceptor: ServerInterceptor = (methodDescriptor, call) => {
    if (methodDescriptor.path !== HEALTH_WATCH_PATH) return new ServerInterceptingCall(call);
    this.#open.add(call);
    const forget = () => this.#open.delete(call);
    const listener = new ServerListenerBuilder()
      .withOnCancel(() => {
        forget();
      })
      .build();
    const responder = new ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        forget();
        next(status);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };

  get size(): number {
    return this.#open.size;
  }

  /** Ends every open health watch with `status`. */
  endAll(status: StatusObject): void {
    for (const call of [...this.#open]) {
      this.#open.delete(call);
      call.sendStatus(status);
    }
  }
}

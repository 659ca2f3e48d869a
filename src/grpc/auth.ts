/**
 * Bearer-token authentication as a grpc-js server interceptor (ecosystem.md §1.5): a call without
 * `authorization: Bearer <token>` ends UNAUTHENTICATED before its handler runs. Health checks (and
 * reflection) are exempt, so probes work without the token (§1.2).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder, type ServerInterceptor } from '@grpc/grpc-js';
import { CoordinatorErrorCode, toGrpcStatus } from './status.ts';

/** Method paths that need no token. */
export const AUTH_EXEMPT_PREFIXES: readonly string[] = ['/grpc.health.v1.Health/', '/grpc.reflection.'];

const BEARER = /^Bearer[ ]+(\S+)\s*$/i;

/** Whether `header` (an `authorization` metadata value) carries `token`, compared in constant time. */
export function bearerMatches(header: unknown, token: string): boolean {
  if (typeof header !== 'string') return false;
  const match = BEARER.exec(header);
  if (match === null) return false;
  // Hash both sides: timingSafeEqual needs equal lengths, and hashing hides the token's length too.
  const given = createHash('sha256').update(match[1]!, 'utf8').digest();
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return timingSafeEqual(given, expected);
}

export function bearerTokenInterceptor(token: string): ServerInterceptor {
  if (typeof token !== 'string' || token === '') throw new TypeError('bearerTokenInterceptor: token must be a non-empty string');
  return (methodDescriptor, call) => {
    if (AUTH_EXEMPT_PREFIXES.some((prefix) => methodDescriptor.path.startsWith(prefix))) return new ServerInterceptingCall(call);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const values = metadata.get('authorization');
        if (values.length === 1 && bearerMatches(values[0], token)) {
          next(metadata);
          return;
        }
        const error = Object.assign(new Error('missing or invalid bearer token (authorization: Bearer <token>)'), {
          code: CoordinatorErrorCode.UNAUTHENTICATED,
        });
        call.sendStatus(toGrpcStatus(error));
      })
      .build();
    const responder = new ResponderBuilder().withStart((next) => next(listener)).build();
    return new ServerInterceptingCall(call, responder);
  };
}

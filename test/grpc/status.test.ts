import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { WatchError, WatchErrorCode } from '../../src/engine/event-bus.ts';
import { ErrorCode, NonRetryableError, WorkflowDefinitionError, stepError } from '../../src/errors.ts';
import {
  CoordinatorErrorCode,
  DEFINITION_ISSUES_METADATA_KEY,
  ERROR_CODE_METADATA_KEY,
  RETRYABLE_METADATA_KEY,
  grpcStatusByCode,
  grpcStatusForCode,
  toGrpcStatus,
} from '../../src/grpc/status.ts';
import { StoreError, StoreErrorCode } from '../../src/store/run-store.ts';

const validStatuses = new Set(Object.values(status).filter((v) => typeof v === 'number'));

describe('error code -> gRPC status', () => {
  it.each([
    ['ErrorCode', ErrorCode],
    ['StoreErrorCode', StoreErrorCode],
    ['WatchErrorCode', WatchErrorCode],
    ['CoordinatorErrorCode', CoordinatorErrorCode],
  ] as const)('maps every %s to a non-OK status', (_name, codes) => {
    for (const code of Object.values(codes)) {
      expect(Object.hasOwn(grpcStatusByCode, code), code).toBe(true);
      const mapped = grpcStatusForCode(code);
      expect(validStatuses.has(mapped), code).toBe(true);
      expect(mapped, code).not.toBe(status.OK);
    }
  });

  it('has no rows for codes that do not exist', () => {
    const all = new Set<string>([
      ...Object.values(ErrorCode),
      ...Object.values(StoreErrorCode),
      ...Object.values(WatchErrorCode),
      ...Object.values(CoordinatorErrorCode),
    ]);
    expect(Object.keys(grpcStatusByCode).filter((code) => !all.has(code))).toEqual([]);
  });

  it('follows the conventions table', () => {
    const expected: Record<string, status> = {
      INVALID_DEFINITION: status.INVALID_ARGUMENT,
      INVALID_TOOL_ARGS: status.INVALID_ARGUMENT,
      INVALID_REQUEST: status.INVALID_ARGUMENT,
      WORKFLOW_NOT_FOUND: status.NOT_FOUND,
      RUN_NOT_FOUND: status.NOT_FOUND,
      RUN_ALREADY_EXISTS: status.ALREADY_EXISTS,
      RUN_ALREADY_FINISHED: status.FAILED_PRECONDITION,
      DEFINITION_NOT_REGISTERED: status.FAILED_PRECONDITION,
      POOL_QUEUE_FULL: status.RESOURCE_EXHAUSTED,
      OUTPUT_TOO_LARGE: status.RESOURCE_EXHAUSTED,
      STORE_FULL: status.RESOURCE_EXHAUSTED,
      TOO_MANY_RUNS: status.RESOURCE_EXHAUSTED,
      POOL_CLOSED: status.UNAVAILABLE,
      SHUTTING_DOWN: status.UNAVAILABLE,
      STORE_LOCKED: status.UNAVAILABLE,
      WATCH_TOO_SLOW: status.RESOURCE_EXHAUSTED,
      UNAUTHENTICATED: status.UNAUTHENTICATED,
      PERMISSION_DENIED: status.PERMISSION_DENIED,
      CANCELLED: status.CANCELLED,
      INTERNAL: status.INTERNAL,
      STORE_CONFLICT: status.INTERNAL,
    };
    for (const [code, want] of Object.entries(expected)) expect([code, grpcStatusForCode(code)]).toEqual([code, want]);
  });

  it('maps a code of a tool’s own, or an inherited property name, to UNKNOWN', () => {
    expect(grpcStatusForCode('PAYMENT_DECLINED')).toBe(status.UNKNOWN);
    expect(grpcStatusForCode('toString')).toBe(status.UNKNOWN);
    expect(grpcStatusForCode('__proto__')).toBe(status.UNKNOWN);
  });
});

describe('toGrpcStatus', () => {
  it('maps a WorkflowDefinitionError to INVALID_ARGUMENT with its issues', () => {
    const issues = [{ path: 'steps/0/tool', code: 'UNKNOWN_TOOL', message: 'no tool “nope”' }];
    const s = toGrpcStatus(new WorkflowDefinitionError(issues));
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toMatch(/invalid workflow definition/);
    expect(s.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['INVALID_DEFINITION']);
    const raw = s.metadata.get(DEFINITION_ISSUES_METADATA_KEY)[0] as Buffer;
    expect(JSON.parse(raw.toString('utf8'))).toEqual(issues);
  });

  it('maps StoreErrors, StepErrors and coded Errors by their code', () => {
    const locked = toGrpcStatus(new StoreError(StoreErrorCode.STORE_LOCKED, 'held by pid 7'));
    expect([locked.code, locked.details, locked.metadata.get(RETRYABLE_METADATA_KEY)]).toEqual([status.UNAVAILABLE, 'held by pid 7', ['false']]);

    const full = toGrpcStatus(stepError(ErrorCode.POOL_QUEUE_FULL, 'queue full'));
    expect([full.code, full.metadata.get(ERROR_CODE_METADATA_KEY), full.metadata.get(RETRYABLE_METADATA_KEY)]).toEqual([
      status.RESOURCE_EXHAUSTED,
      ['POOL_QUEUE_FULL'],
      ['true'],
    ]);

    const own = toGrpcStatus(new NonRetryableError('declined', { code: 'PAYMENT_DECLINED' }));
    expect([own.code, own.metadata.get(ERROR_CODE_METADATA_KEY)]).toEqual([status.UNKNOWN, ['PAYMENT_DECLINED']]);

    const slow = toGrpcStatus(new WatchError(WatchErrorCode.WATCH_TOO_SLOW, 'resume from seq 41'));
    expect([slow.code, slow.metadata.get(RETRYABLE_METADATA_KEY)]).toEqual([status.RESOURCE_EXHAUSTED, ['true']]);
    expect(toGrpcStatus(new WatchError(WatchErrorCode.RUN_NOT_FOUND, 'run x does not exist')).code).toBe(status.NOT_FOUND);

    const coordinator = toGrpcStatus(Object.assign(new Error('run runs/x does not exist'), { code: CoordinatorErrorCode.RUN_NOT_FOUND }));
    expect(coordinator.code).toBe(status.NOT_FOUND);
  });

  it('treats anything uncoded as a bug (INTERNAL)', () => {
    for (const thrown of [new TypeError('x is undefined'), 'a string', undefined, { code: 5 }]) {
      const s = toGrpcStatus(thrown);
      expect(s.code).toBe(status.INTERNAL);
      expect(s.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['INTERNAL']);
    }
  });

  it('keeps metadata values ASCII', () => {
    const s = toGrpcStatus({ code: 'ÜBER_ERROR', message: 'm', retryable: false });
    expect(s.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['?BER_ERROR']);
  });
});

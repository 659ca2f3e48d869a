/** Reading and checking the fields of coordinator requests: resource names, page tokens and sizes, cursors. */
import type { Named } from '../engine/engine.ts';
import type { RunStatus } from '../engine/events.ts';
import { fromProtoStruct, type ProtoStruct } from './proto.ts';
import { CoordinatorErrorCode } from './status.ts';

export type AnyRequest = Record<string, unknown>;

export class CoordinatorError extends Error {
  readonly code: string;
  /** The request field at fault (AIP-193 path), reported as a google.rpc.BadRequest violation. */
  readonly field: string | undefined;
  constructor(code: CoordinatorErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'CoordinatorError';
    this.code = code;
    this.field = field;
  }
}

/** ListWorkflows/ListRuns page sizes: 0 means the default. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export const RUN_STATUSES: Readonly<Record<string, RunStatus>> = {
  RUN_STATUS_PENDING: 'pending',
  RUN_STATUS_RUNNING: 'running',
  RUN_STATUS_COMPLETED: 'completed',
  RUN_STATUS_FAILED: 'failed',
  RUN_STATUS_CANCELLED: 'cancelled',
};

export function pageSizeOf(value: unknown): number {
  const n = Number(value ?? 0);
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE_SIZE) {
    throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `page_size must be between 0 and ${MAX_PAGE_SIZE} (0: ${DEFAULT_PAGE_SIZE}), got ${String(value)}`, 'page_size');
  }
  return n === 0 ? DEFAULT_PAGE_SIZE : n;
}

export function encodePageToken(cursor: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');
}

/** The cursor in a page token; `undefined` for an empty token. `check` validates its shape. */
export function decodePageToken<T>(token: unknown, kind: string, check: (value: Record<string, unknown>) => T | undefined): T | undefined {
  if (token === undefined || token === null || token === '') return undefined;
  let cursor: T | undefined;
  if (typeof token === 'string' && /^[A-Za-z0-9_-]+$/.test(token)) {
    try {
      const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && (value as Record<string, unknown>).k === kind) {
        cursor = check(value as Record<string, unknown>);
      }
    } catch {
      cursor = undefined;
    }
  }
  if (cursor === undefined) throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, 'page_token is malformed (pass back a next_page_token unchanged)', 'page_token');
  return cursor;
}

export const RUN_ID_PATTERN = /^[A-Za-z0-9._~-]{1,128}$/;

export function toList<T extends { readonly name: string }>(items: Named<T> | undefined): T[] {
  if (items === undefined) return [];
  return Array.isArray(items) ? [...(items as readonly T[])] : Object.values(items as Readonly<Record<string, T>>);
}

/** The id in a resource name (`runs/{id}`); `field` names the request field for the error. */
export function resourceId(name: unknown, collection: 'workflows' | 'runs', field = 'name'): string {
  const prefix = `${collection}/`;
  if (typeof name !== 'string' || !name.startsWith(prefix) || name.length === prefix.length || name.indexOf('/', prefix.length) !== -1) {
    throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `${field}: expected a resource name ${prefix}{id}, got ${JSON.stringify(name)}`, field);
  }
  return name.slice(prefix.length);
}

export function jsonObject(struct: unknown): Record<string, unknown> | undefined {
  return fromProtoStruct(struct as ProtoStruct | null | undefined);
}

/**
 * A request's Struct field as a JSON object for a run's input. A Struct may carry NaN or Infinity (valid
 * doubles) that JSON, and so the run's stored input, cannot: refused naming the path (`variables.x`).
 */
export function jsonInput(struct: unknown, field: string): Record<string, unknown> | undefined {
  const value = jsonObject(struct);
  if (value !== undefined) checkFinite(value, field);
  return value;
}

function checkFinite(value: unknown, path: string): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `${path}: ${value} is not a JSON number`, path);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => checkFinite(item, `${path}[${index}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) checkFinite(item, `${path}.${key}`);
  }
}

export function afterSeqOf(value: unknown): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new CoordinatorError(CoordinatorErrorCode.INVALID_REQUEST, `after_seq must be a non-negative integer, got ${String(value)}`, 'after_seq');
  return n;
}

/**
 * gRPC's rich error model (google.rpc.Status in the `grpc-status-details-bin` trailer), so that a client
 * in any language reads a failed call's details with its standard library (Python's
 * `grpc_status.rpc_status.from_call`, Go's `status.FromError(...).Details()`):
 * - ErrorInfo { reason: our error code, domain, metadata.retryable } on every failed call;
 * - BadRequest { field_violations } when the request itself is wrong: each definition issue or bad field,
 *   with its path (AIP-193: `document.steps[2].if`) and its code as `reason`.
 * The googleapis protos come from google-proto-files; protobufjs encodes them.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

export const STATUS_DETAILS_METADATA_KEY = 'grpc-status-details-bin';
/** ErrorInfo.domain of our errors. */
export const ERROR_DOMAIN = 'jaf-workflows';

const TYPE_PREFIX = 'type.googleapis.com/';

export interface FieldViolation {
  /** The request field, as an AIP-193 path (`document.steps[2].if`, `page_size`). */
  readonly field: string;
  readonly description: string;
  /** A code for the kind of problem (`UNKNOWN_TOOL`, `CEL_SYNTAX`). */
  readonly reason?: string;
}

export interface RichStatus {
  readonly code: number;
  readonly message: string;
  readonly errorInfo?: { readonly reason: string; readonly metadata: Readonly<Record<string, string>> };
  readonly fieldViolations?: readonly FieldViolation[];
}

interface RpcTypes {
  readonly status: protobuf.Type;
  readonly errorInfo: protobuf.Type;
  readonly badRequest: protobuf.Type;
}

let types: RpcTypes | undefined;

function rpcTypes(): RpcTypes {
  if (types !== undefined) return types;
  const base = dirname(createRequire(import.meta.url).resolve('google-proto-files/package.json'));
  const root = new protobuf.Root();
  // protobufjs bundles google/protobuf/*; everything else is under google-proto-files.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(base, target));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
  types = {
    status: root.lookupType('google.rpc.Status'),
    errorInfo: root.lookupType('google.rpc.ErrorInfo'),
    badRequest: root.lookupType('google.rpc.BadRequest'),
  };
  return types;
}

function any(type: protobuf.Type, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  return { type_url: TYPE_PREFIX + type.fullName.replace(/^\./, ''), value: type.encode(type.fromObject(value)).finish() };
}

/** The serialized google.rpc.Status for the `grpc-status-details-bin` trailer. */
export function encodeRichStatus(rich: RichStatus): Buffer {
  const t = rpcTypes();
  const details = [];
  if (rich.errorInfo !== undefined) details.push(any(t.errorInfo, { reason: rich.errorInfo.reason, domain: ERROR_DOMAIN, metadata: rich.errorInfo.metadata }));
  if (rich.fieldViolations !== undefined && rich.fieldViolations.length > 0) {
    details.push(any(t.badRequest, { fieldViolations: rich.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: v.reason ?? '' })) }));
  }
  return Buffer.from(t.status.encode(t.status.fromObject({ code: rich.code, message: rich.message, details })).finish());
}

/** Reads a `grpc-status-details-bin` value back (what clients do; used by our CLI and tests). */
export function decodeRichStatus(bytes: Uint8Array): RichStatus {
  const t = rpcTypes();
  const status = t.status.toObject(t.status.decode(bytes), { defaults: true }) as {
    code: number;
    message: string;
    details: { type_url: string; value: Uint8Array }[];
  };
  let errorInfo: RichStatus['errorInfo'];
  let fieldViolations: FieldViolation[] | undefined;
  for (const detail of status.details) {
    const typeName = detail.type_url.slice(detail.type_url.lastIndexOf('/') + 1);
    if (typeName === 'google.rpc.ErrorInfo') {
      const info = t.errorInfo.toObject(t.errorInfo.decode(detail.value), { defaults: true }) as { reason: string; metadata: Record<string, string> };
      errorInfo = { reason: info.reason, metadata: info.metadata };
    } else if (typeName === 'google.rpc.BadRequest') {
      const bad = t.badRequest.toObject(t.badRequest.decode(detail.value), { defaults: true }) as { fieldViolations: FieldViolation[] };
      fieldViolations = bad.fieldViolations.map((v) => ({ field: v.field, description: v.description, ...(v.reason ? { reason: v.reason } : {}) }));
    }
  }
  return {
    code: status.code,
    message: status.message,
    ...(errorInfo === undefined ? {} : { errorInfo }),
    ...(fieldViolations === undefined ? {} : { fieldViolations }),
  };
}

/**
 * An issue path as an AIP-193 field path under `root`: a JSON Pointer `/steps/2/if` becomes
 * `document.steps[2].if`; any other path (a step path, an option name) is appended as it is.
 */
export function fieldPath(root: string, path: string): string {
  if (path === '' || path === '/') return root;
  if (!path.startsWith('/')) return `${root}.${path}`;
  let out = root;
  for (const raw of path.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^(0|[1-9][0-9]*)$/.test(segment) ? `[${segment}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment) ? `.${segment}` : `[${JSON.stringify(segment)}]`;
  }
  return out;
}

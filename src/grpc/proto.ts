/**
 * The coordinator's gRPC contract, loaded at runtime from `proto/jaf/workflows/v1/workflow_service.proto`
 * with @grpc/proto-loader (no generated code), plus the conversions between JSON values and the
 * google.protobuf Struct/Value/Timestamp shapes proto-loader produces.
 *
 * Loader options, and why:
 * - `keepCase: false`: fields are camelCase in JS (`stepId`, `executionTimeMs`), as in the rest of the
 *   TypeScript API (StepResultData) and in every grpc-node example; the wire and other languages keep
 *   the proto's snake_case. Handlers therefore read `request.afterSeq` and write `{ stepFinished: ... }`.
 * - `longs: String`: int64 fields (`seq`, `last_seq`, `after_seq`, Timestamp seconds) are decimal strings,
 *   exact at any size; handlers accept numbers or strings when writing.
 * - `enums: String`: enum values are their names (`'RUN_STATUS_RUNNING'`).
 * - `defaults: true`: absent scalar fields read as their defaults (`''`, `0`, `false`), absent message
 *   fields as `null`; so an unset `output` (no output) is `null`, while a JSON null output is a Value
 *   `{ nullValue: 'NULL_VALUE' }`. Members of a oneof that are not set stay absent (`undefined`).
 * - `oneofs: true`: a oneof's name holds the name of the field set (`event: 'stepFinished'`, Value's
 *   `kind: 'stringValue'`): switch on it rather than probing the members.
 * - `includeDirs: [PROTO_ROOT]`: our imports resolve against the repository's `proto/`. The well-known
 *   types (google/protobuf/struct.proto, timestamp.proto) need no directory: protobufjs has them built in
 *   (`protobufjs/src/common.js`) and resolves those imports without reading files.
 *
 * Typed stubs could later be generated with `proto-loader-gen-types` using these same options
 * (`--longs=String --enums=String --defaults --oneofs --importFileExtension=.js`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeClientConstructor, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export const PROTO_PACKAGE = 'jaf.workflows.v1';
export const WORKFLOW_SERVICE_NAME = `${PROTO_PACKAGE}.WorkflowService`;
/** The service proto, relative to PROTO_ROOT. */
export const WORKFLOW_SERVICE_PROTO = 'jaf/workflows/v1/workflow_service.proto';

/**
 * The repository's `proto/` directory. This module runs from `src/grpc` (sources, tests) and from
 * `dist/src/grpc` (the build), possibly inside `node_modules/jaf-workflows`: walk up to the first
 * directory holding this package's package.json, and take its `proto/`.
 */
export const PROTO_ROOT: string = findProtoRoot(dirname(fileURLToPath(import.meta.url)));

/** The `proto/` directory of the jaf-workflows package at or above `start` (exported for tests). */
export function findProtoRoot(start: string): string {
  for (let dir = start; ; ) {
    if (isThisPackage(dir) && existsSync(join(dir, 'proto', WORKFLOW_SERVICE_PROTO))) return join(dir, 'proto');
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`jaf-workflows: cannot find proto/${WORKFLOW_SERVICE_PROTO} above ${start}`);
    dir = parent;
  }
}

function isThisPackage(dir: string): boolean {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return false;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'jaf-workflows';
  } catch {
    return false;
  }
}

export const PROTO_LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});

/** The loaded package definition: pass it to `loadPackageDefinition`, or to reflection. */
export const packageDefinition: PackageDefinition = loadSync(WORKFLOW_SERVICE_PROTO, { ...PROTO_LOADER_OPTIONS });

/** The standard health service (grpc-health-check), as served by the coordinator. */
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/**
 * The workflow service and the health service in one package definition: what reflection is given,
 * so that it lists both (reflection only knows the services of the definition it is built from).
 */
export const reflectionPackageDefinition: PackageDefinition = loadSync([WORKFLOW_SERVICE_PROTO, healthProtoPath], { ...PROTO_LOADER_OPTIONS });

/** `server.addService(workflowServiceDefinition, handlers)`. */
export const workflowServiceDefinition: ServiceDefinition = packageDefinition[WORKFLOW_SERVICE_NAME] as ServiceDefinition;

/** The grpc-js client class: `new WorkflowServiceClient(address, credentials)`. */
export const WorkflowServiceClient: ServiceClientConstructor = makeClientConstructor(workflowServiceDefinition, WORKFLOW_SERVICE_NAME);

// ---------------------------------------------------------------------------------------------
// google.protobuf.Value / Struct / Timestamp as proto-loader represents them (keepCase: false,
// oneofs: true). Reading accepts what proto-loader decodes (with `kind` and nulls for the other
// members); writing produces the minimal form (one member set), which protobufjs encodes.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ProtoValue {
  nullValue?: 'NULL_VALUE' | 0 | null;
  numberValue?: number | null;
  stringValue?: string | null;
  boolValue?: boolean | null;
  structValue?: ProtoStruct | null;
  listValue?: { values?: ProtoValue[] | null } | null;
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue' | null;
}

export interface ProtoStruct {
  fields?: Record<string, ProtoValue> | null;
}

export interface ProtoTimestamp {
  seconds?: string | number | null;
  nanos?: number | null;
}

/**
 * A JSON value as a google.protobuf.Value. Values JSON cannot hold are turned as JSON.stringify would
 * (undefined members dropped, `toJSON` applied); non-finite numbers are rejected, since JSON has none.
 */
export function toProtoValue(value: unknown): ProtoValue {
  return encodeValue(toJson(value));
}

/** A JSON object as a google.protobuf.Struct. */
export function toProtoStruct(value: Readonly<Record<string, unknown>>): ProtoStruct {
  const json = toJson(value);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TypeError('a Struct must be a JSON object');
  return encodeStruct(json);
}

/** A google.protobuf.Value back as JSON; an unset Value (`null`/`undefined`) gives `undefined`. */
export function fromProtoValue(value: ProtoValue | null | undefined): JsonValue | undefined {
  if (value === null || value === undefined) return undefined;
  const kind = value.kind ?? kindOf(value);
  switch (kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return value.numberValue ?? 0;
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'structValue':
      return fromProtoStruct(value.structValue) ?? {};
    case 'listValue':
      return (value.listValue?.values ?? []).map((item) => fromProtoValue(item) ?? null);
    default:
      // A Value with no member set: proto3 JSON reads it as null.
      return null;
  }
}

/** A google.protobuf.Struct back as a JSON object; an unset Struct gives `undefined`. */
export function fromProtoStruct(struct: ProtoStruct | null | undefined): { [key: string]: JsonValue } | undefined {
  if (struct === null || struct === undefined) return undefined;
  const out: { [key: string]: JsonValue } = {};
  for (const [key, item] of Object.entries(struct.fields ?? {})) setOwn(out, key, fromProtoValue(item) ?? null);
  return out;
}

/** Epoch milliseconds as a google.protobuf.Timestamp. */
export function toProtoTimestamp(epochMs: number): ProtoTimestamp {
  if (!Number.isFinite(epochMs)) throw new RangeError(`not a time: ${epochMs}`);
  const seconds = Math.floor(epochMs / 1000);
  const nanos = Math.round((epochMs - seconds * 1000) * 1e6);
  return nanos >= 1e9 ? { seconds: String(seconds + 1), nanos: nanos - 1e9 } : { seconds: String(seconds), nanos };
}

/** A google.protobuf.Timestamp as epoch milliseconds; an unset Timestamp gives `undefined`. */
export function fromProtoTimestamp(timestamp: ProtoTimestamp | null | undefined): number | undefined {
  if (timestamp === null || timestamp === undefined) return undefined;
  return Number(timestamp.seconds ?? 0) * 1000 + (timestamp.nanos ?? 0) / 1e6;
}

function kindOf(value: ProtoValue): ProtoValue['kind'] {
  if (value.nullValue !== undefined && value.nullValue !== null) return 'nullValue';
  if (typeof value.numberValue === 'number') return 'numberValue';
  if (typeof value.stringValue === 'string') return 'stringValue';
  if (typeof value.boolValue === 'boolean') return 'boolValue';
  if (value.structValue !== undefined && value.structValue !== null) return 'structValue';
  if (value.listValue !== undefined && value.listValue !== null) return 'listValue';
  return undefined;
}

function toJson(value: unknown): JsonValue {
  // JSON.stringify decides what JSON would hold (toJSON, dropped undefined/functions); a cycle or a
  // BigInt throws, as it should: such a value cannot go on the wire.
  const text = JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item === 'number' && !Number.isFinite(item)) throw new TypeError(`a non-finite number (${item}) cannot be a JSON value`);
    return item;
  });
  return text === undefined ? null : (JSON.parse(text) as JsonValue);
}

function encodeValue(value: JsonValue): ProtoValue {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'number':
      return { numberValue: value };
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    default:
      return Array.isArray(value)
        ? { listValue: { values: value.map(encodeValue) } }
        : { structValue: encodeStruct(value) };
  }
}

function encodeStruct(value: { [key: string]: JsonValue }): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, item] of Object.entries(value)) setOwn(fields, key, encodeValue(item));
  return { fields };
}

/** `target[key] = value`, also for the key `__proto__` (which JSON may hold as an ordinary key). */
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

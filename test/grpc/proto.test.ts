import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EnumTypeDefinition, MethodDefinition } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import {
  PROTO_ROOT,
  WORKFLOW_SERVICE_NAME,
  WORKFLOW_SERVICE_PROTO,
  findProtoRoot,
  fromProtoStruct,
  fromProtoTimestamp,
  fromProtoValue,
  packageDefinition,
  toProtoStruct,
  toProtoTimestamp,
  toProtoValue,
  workflowServiceDefinition,
} from '../../src/grpc/proto.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const protoText = readFileSync(join(root, 'proto', WORKFLOW_SERVICE_PROTO), 'utf8');
/** The proto without comments, for checks on its declarations. */
const declarations = protoText.replace(/\/\/.*$/gm, '');

describe('the WorkflowService proto', () => {
  it('is found in the repository from the source layout and from the compiled layout', () => {
    expect(PROTO_ROOT).toBe(join(root, 'proto'));
    expect(findProtoRoot(join(root, 'src', 'grpc'))).toBe(join(root, 'proto'));
    expect(findProtoRoot(join(root, 'dist', 'src', 'grpc'))).toBe(join(root, 'proto'));
    expect(() => findProtoRoot('/')).toThrow(/cannot find proto/);
  });

  it('has exactly the RPCs of the contract, with their streaming flags', () => {
    const methods = workflowServiceDefinition as unknown as Record<string, MethodDefinition<object, object>>;
    const shape = Object.fromEntries(
      Object.entries(methods).map(([name, m]) => [name, { path: m.path, requestStream: m.requestStream, responseStream: m.responseStream }]),
    );
    const unary = (name: string) => ({ path: `/${WORKFLOW_SERVICE_NAME}/${name}`, requestStream: false, responseStream: false });
    const serverStream = (name: string) => ({ path: `/${WORKFLOW_SERVICE_NAME}/${name}`, requestStream: false, responseStream: true });
    expect(shape).toEqual({
      CreateWorkflow: unary('CreateWorkflow'),
      GetWorkflow: unary('GetWorkflow'),
      ListWorkflows: unary('ListWorkflows'),
      StartRun: unary('StartRun'),
      GetRun: unary('GetRun'),
      ListRuns: unary('ListRuns'),
      CancelRun: unary('CancelRun'),
      WatchRun: serverStream('WatchRun'),
      ExecuteWorkflow: serverStream('ExecuteWorkflow'),
      ListTools: unary('ListTools'),
    });
    // The stream methods share one message type.
    const messageName = (m: MethodDefinition<object, object>) => (m.responseType.type as { name?: string }).name;
    expect([messageName(methods.WatchRun!), messageName(methods.ExecuteWorkflow!)]).toEqual(['RunEvent', 'RunEvent']);
    // keepCase: false gives camelCase handler/client names beside the proto names.
    expect(methods.ListTools!.originalName).toBe('listTools');
  });

  it('numbers every enum from *_UNSPECIFIED = 0', () => {
    const enums = Object.entries(packageDefinition).filter(([name, def]) => name.startsWith('jaf.') && def.format === 'Protocol Buffer 3 EnumDescriptorProto');
    expect(enums.map(([name]) => name).sort()).toEqual([
      'jaf.workflows.v1.DocumentFormat',
      'jaf.workflows.v1.RetryReason',
      'jaf.workflows.v1.RunStatus',
      'jaf.workflows.v1.StepKind',
      'jaf.workflows.v1.StepStatus',
    ]);
    for (const [name, def] of enums) {
      const values = (def as EnumTypeDefinition).type as { value: { name: string; number: number }[] };
      const prefix = name.split('.').pop()!.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
      expect(values.value[0], name).toEqual(expect.objectContaining({ name: `${prefix}_UNSPECIFIED`, number: 0 }));
      for (const v of values.value) expect(v.name.startsWith(`${prefix}_`), v.name).toBe(true);
    }
  });

  it('uses snake_case field names and no proto3 `optional` (Debian protoc 3.5.1 rejects it)', () => {
    const fields = [...declarations.matchAll(/^\s*(?:repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*\d+\s*;/gm)]
      .filter((m) => m[1] !== 'option')
      .map((m) => m[2]!);
    expect(fields.length).toBeGreaterThan(60);
    expect(fields.filter((f) => !/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/.test(f) && !/^[A-Z][A-Z0-9_]*$/.test(f))).toEqual([]);
    expect(declarations).not.toMatch(/^\s*optional\s/m);
    expect(declarations).toMatch(/^package jaf\.workflows\.v1;$/m);
  });

  it('names resources workflows/{id} and runs/{id} in its documentation', () => {
    expect(protoText).toContain('`workflows/{workflow_id}`');
    expect(protoText).toContain('`runs/{run_id}`');
  });

  it('resolves the well-known types it imports', () => {
    for (const name of ['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.Timestamp', 'jaf.workflows.v1.RunEvent', 'jaf.workflows.v1.StepResult']) {
      expect(packageDefinition[name], name).toBeDefined();
    }
  });
});

describe('JSON <-> google.protobuf.Value/Struct/Timestamp', () => {
  it('round-trips JSON values of every kind', () => {
    const value = { s: 'x', n: 1.5, i: -3, t: true, f: false, z: null, list: [1, 'two', [null], { deep: { deeper: [] } }], empty: {}, __proto__key: 1 };
    expect(fromProtoValue(toProtoValue(value))).toEqual(value);
    for (const scalar of ['', 'text', 0, 42, true, false, null, [], {}]) expect(fromProtoValue(toProtoValue(scalar))).toEqual(scalar);
    expect(fromProtoStruct(toProtoStruct({ a: 1, b: [true] }))).toEqual({ a: 1, b: [true] });
  });

  it('keeps a `__proto__` key as data', () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as Record<string, unknown>;
    const back = fromProtoStruct(toProtoStruct(value))!;
    expect(Object.keys(back)).toEqual(['__proto__', 'ok']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
  });

  it('converts as JSON would, and tells an unset Value from a null one', () => {
    expect(fromProtoValue(toProtoValue({ a: undefined, d: new Date(0) }))).toEqual({ d: '1970-01-01T00:00:00.000Z' });
    expect(fromProtoValue(null)).toBeUndefined();
    expect(fromProtoValue(toProtoValue(null))).toBeNull();
    expect(fromProtoStruct(null)).toBeUndefined();
    expect(() => toProtoValue(Number.NaN)).toThrow(/non-finite/);
    expect(() => toProtoValue({ big: 1n })).toThrow();
    expect(() => toProtoStruct([] as unknown as Record<string, unknown>)).toThrow(/JSON object/);
  });

  it('converts epoch milliseconds to Timestamps and back', () => {
    for (const ms of [0, 1, 999, 1_764_158_400_123, -1]) {
      const ts = toProtoTimestamp(ms);
      expect(typeof ts.seconds).toBe('string');
      expect(ts.nanos).toBeGreaterThanOrEqual(0);
      expect(ts.nanos).toBeLessThan(1e9);
      expect(fromProtoTimestamp(ts)).toBe(ms);
    }
    expect(fromProtoTimestamp(null)).toBeUndefined();
  });
});

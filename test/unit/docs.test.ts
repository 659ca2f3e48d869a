import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { ErrorCode, parseWorkflowDocument, StoreErrorCode } from 'jaf-workflows';
import { WatchErrorCode } from '../../src/engine/event-bus.ts';
import { CoordinatorErrorCode, grpcStatusForCode } from '../../src/grpc/status.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every error code in its table', () => {
    const coordinatorCodes = new Set<string>([...Object.values(CoordinatorErrorCode), ...Object.values(WatchErrorCode)]);
    const documented = [...readme.matchAll(/^\| `([A-Z_]+)` \| [^|]+ \| [^|]+ \| [A-Z_]+ \|$/gm)].map((m) => m[1]).filter((code) => !code!.startsWith('STORE_') && !coordinatorCodes.has(code!));
    expect(documented.sort()).toEqual(Object.values(ErrorCode).sort());
  });

  it('documents every coordinator and watcher code', () => {
    const documented = [...readme.matchAll(/^\| `([A-Z_]+)` \| [^|]+ \| [A-Z_]+ \|$/gm)].map((m) => m[1]);
    for (const code of [...Object.values(CoordinatorErrorCode), ...Object.values(WatchErrorCode)]) expect(documented).toContain(code);
  });

  it('gives each documented code the gRPC status src/grpc/status.ts maps it to', () => {
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \|.*\| ([A-Z_]+) \|$/gm)];
    expect(rows.length).toBeGreaterThan(40);
    for (const [, code, name] of rows) expect(`${code} -> ${name}`).toBe(`${code} -> ${status[grpcStatusForCode(code!)]}`);
  });

  it('documents every store error code', () => {
    const documented = [...readme.matchAll(/^\| `(STORE_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.values(StoreErrorCode).sort());
  });

  it('shows a declarative workflow that parses', () => {
    const start = readme.indexOf('```yaml') + '```yaml'.length;
    const workflow = parseWorkflowDocument(readme.slice(start, readme.indexOf('```', start)), 'yaml');
    expect(workflow.steps.map((s) => s.id)).toEqual(['validate_order', 'inventory_check']);
  });

  it('starts with the install-and-start command and the test command', () => {
    const firstBlock = readme.slice(readme.indexOf('```sh'), readme.indexOf('```', readme.indexOf('```sh') + 5));
    expect(firstBlock).toContain('npm install && npm start');
    expect(firstBlock).toContain('npm test');
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Relative imports that exist at run time (type-only imports erased by the compiler are skipped). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/^import\s+(type\s+)?[^'"]*?from\s+'(\.[^']+)'/gm)) {
    if (match[1] === undefined) found.push(relative(root, resolve(dirname(join(root, file)), match[2]!)));
  }
  return found;
}

const files = [...sources('src'), ...sources('workers')];
const graph = new Map(files.map((f) => [f, runtimeImports(f)]));

describe('architecture rules', () => {
  it('reads the import graph (so the rules below check something)', () => {
    expect(graph.get('src/engine/run.ts')).toContain('src/engine/attempts.ts');
    expect(graph.get('workers/tool-worker.ts')).toEqual(['src/engine/worker-protocol.ts', 'src/errors.ts']);
  });

  it('workers/ imports only the worker protocol and the error helpers from src/', () => {
    for (const file of sources('workers')) {
      const fromSrc = graph.get(file)!.filter((target) => target.startsWith('src/'));
      expect(fromSrc.filter((t) => t !== 'src/engine/worker-protocol.ts' && t !== 'src/errors.ts'), file).toEqual([]);
    }
  });

  it('the worker protocol depends on nothing but the error helpers', () => {
    expect(graph.get('src/engine/worker-protocol.ts')).toEqual(['src/errors.ts']);
  });

  it('the engine and the store never import the gRPC layer', () => {
    for (const file of [...sources('src/engine'), ...sources('src/store'), ...sources('src/definition')]) {
      expect(graph.get(file)!.filter((t) => t.startsWith('src/grpc/')), file).toEqual([]);
    }
  });

  it('definitions do not depend on the engine at load time', () => {
    for (const file of sources('src/definition')) {
      expect(graph.get(file)!.filter((t) => t.startsWith('src/engine/')), file).toEqual([]);
    }
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[][] = [];
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...trail.slice(trail.indexOf(file)), file]);
        return;
      }
      state.set(file, 'visiting');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});

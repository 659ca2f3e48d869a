/**
 * Built-in pool tools: small, bounded tools that run on the worker pool. Each lives in its own module
 * under workers/tools/ (node built-ins only, so a pool thread loads nothing else). The schemas bound every
 * argument so that no single call can hold a pool thread for long or return an oversized output.
 */
import { siblingModule, Tool, type JsonSchema } from './tool.ts';

/** An object schema whose every property is required unless listed in `optional`. */
function objectSchema(properties: Record<string, JsonSchema>, optional: readonly string[] = []): JsonSchema {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((key) => !optional.includes(key)),
    additionalProperties: false,
  };
}

// siblingModule keeps the caller's extension: workers/tools/*.ts from source, dist/workers/tools/*.js when compiled.
const toolModule = (file: string): URL => siblingModule(import.meta.url, `../../workers/tools/${file}`);

/** Fresh Tool instances of every built-in (register them with `new WorkflowEngine({ tools: builtinTools() })`). */
export function builtinTools(): Tool[] {
  return [
    new Tool({
      name: 'echo',
      description: 'Returns its arguments unchanged.',
      parameters: objectSchema({ message: { type: 'string', maxLength: 65_536 } }),
      module: toolModule('echo'),
    }),
    new Tool({
      name: 'sleep',
      description: 'Waits `ms` milliseconds on a pool thread; returns { sleptMs }.',
      parameters: objectSchema({ ms: { type: 'integer', minimum: 0, maximum: 60_000 } }),
      module: toolModule('sleep'),
    }),
    new Tool({
      name: 'sha256',
      description: 'SHA-256 hex digest of `data` (UTF-8), re-hashed over the raw digest until `rounds` hashes are done (default 1).',
      parameters: objectSchema(
        {
          data: { type: 'string', maxLength: 1_048_576 },
          rounds: { type: 'integer', minimum: 1, maximum: 10_000_000 },
        },
        ['rounds'],
      ),
      module: toolModule('sha256'),
    }),
    new Tool({
      name: 'count_primes',
      description: 'Counts the primes below `limit` by trial division (pure-JS CPU work); returns { limit, count }.',
      parameters: objectSchema({ limit: { type: 'integer', minimum: 0, maximum: 10_000_000 } }),
      module: toolModule('count-primes'),
    }),
    new Tool({
      name: 'text_stats',
      description: 'Counts lines, words, characters (code points) and UTF-8 bytes of `text`.',
      parameters: objectSchema({ text: { type: 'string', maxLength: 1_048_576 } }),
      module: toolModule('text-stats'),
    }),
  ];
}

import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { ErrorCode, stepError, type StepError } from '../errors.ts';
import type { ToolContext } from '../engine/worker-protocol.ts';

export type { ToolContext } from '../engine/worker-protocol.ts';

export type JsonSchema = Readonly<Record<string, unknown>>;

export type ToolFunction<Args = any, Result = unknown> = (args: Args, ctx: ToolContext) => Result | Promise<Result>;

interface ToolSpecBase {
  readonly name: string;
  readonly description?: string;
  /** JSON Schema for the arguments; checked before the tool runs. Omit to accept any arguments. */
  readonly parameters?: JsonSchema;
}

/** Runs on the main thread: for I/O-bound closures (HTTP calls, database queries). */
export interface InlineToolSpec<Args = any, Result = unknown> extends ToolSpecBase {
  readonly execute: ToolFunction<Args, Result>;
}

/** Runs on the worker pool: `module` is a file URL (or absolute path) whose default export is the tool. */
export interface ModuleToolSpec extends ToolSpecBase {
  readonly module: string | URL;
}

export type ToolSpec = InlineToolSpec | ModuleToolSpec;

export type ToolExecution =
  | { readonly kind: 'inline'; readonly execute: ToolFunction }
  | { readonly kind: 'module'; readonly moduleUrl: string };

// One Ajv for every tool: schemas compile once per Tool. `$data` stays off (CVE-2025-69873), as do allErrors.
// Schemas are not kept by the instance (addUsedSchema off, removed after compiling): two tools may share
// an `$id`, and tools made per request do not accumulate.
const ajv = new Ajv({ strict: false, allErrors: false, coerceTypes: false, useDefaults: false, addUsedSchema: false });

const toolNamePattern = /^[A-Za-z0-9_-]{1,64}$/;

export class Tool<Args = any, Result = unknown> {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonSchema | undefined;
  readonly execution: ToolExecution;
  readonly #validate: ValidateFunction | undefined;

  constructor(spec: InlineToolSpec<Args, Result> | ModuleToolSpec) {
    if (typeof spec?.name !== 'string' || !toolNamePattern.test(spec.name)) {
      throw new TypeError(
        `Tool: name must be 1-64 characters of letters, digits, '_' or '-' (it is sent to models as a function name); got ${JSON.stringify(spec?.name)}`,
      );
    }
    this.name = spec.name;
    this.description = spec.description ?? '';
    this.parameters = spec.parameters;
    if ('execute' in spec && typeof spec.execute === 'function') {
      if ('module' in spec) throw new TypeError(`Tool ${spec.name}: give either execute or module, not both`);
      this.execution = { kind: 'inline', execute: spec.execute as ToolFunction };
    } else if ('module' in spec && spec.module !== undefined) {
      this.execution = { kind: 'module', moduleUrl: toModuleUrl(spec.name, spec.module) };
    } else {
      throw new TypeError(`Tool ${spec.name}: needs execute (a function, runs inline) or module (a file URL, runs in the pool)`);
    }
    this.#validate = spec.parameters === undefined ? undefined : compileSchema(spec.parameters, `Tool ${spec.name}: parameters`);
  }

  get runsInPool(): boolean {
    return this.execution.kind === 'module';
  }

  /** Checks arguments against `parameters`; returns the error to fail the step with, if any. */
  validateArgs(args: unknown): StepError | undefined {
    const validate = this.#validate;
    if (validate === undefined || validate(args)) return undefined;
    const first = validate.errors?.[0];
    const where = first === undefined ? 'args' : `args${first.instancePath.replaceAll('/', '.')}`;
    const what = first?.message ?? 'does not match the schema';
    const extra = first?.keyword === 'additionalProperties' ? ` (${JSON.stringify(first.params)})` : '';
    return stepError(
      ErrorCode.INVALID_TOOL_ARGS,
      `tool ${this.name}: ${where} ${what}${extra}`,
      { tool: this.name, field: where, keyword: first?.keyword },
    );
  }
}

/** Compiles a JSON Schema once; an invalid schema fails where it is declared. */
export function compileSchema(schema: JsonSchema, owner: string): ValidateFunction {
  if (schema.$async === true) throw new TypeError(`${owner}: $async schemas are not supported (validation must be synchronous)`);
  try {
    return ajv.compile(schema);
  } catch (err) {
    throw new TypeError(`${owner} is not a valid JSON Schema: ${(err as Error).message}`);
  } finally {
    ajv.removeSchema(schema);
  }
}

function toModuleUrl(toolName: string, module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith('file:')) return module;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new TypeError(`Tool ${toolName}: module must be a file URL or an absolute path, got ${JSON.stringify(module)}`);
}

/**
 * The URL of a sibling tool module, keeping the caller's extension: `.ts` when running from source
 * (tests, tsx), `.js` when running compiled output. `from` is the caller's `import.meta.url`.
 */
export function siblingModule(from: string, relativeWithoutExtension: string): URL {
  const extension = from.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`${relativeWithoutExtension}${extension}`, from);
}

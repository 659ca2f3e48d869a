/**
 * A workflow definition as a canonical JSON document and its content hash. Runs are pinned to the
 * hash, so a run started on one version of a workflow is never resumed on another. For code-defined
 * workflows the document names functions by their source text: it identifies a version, it cannot
 * rebuild one.
 */
import { createHash } from 'node:crypto';
import { assertNever, type GlobalErrorHandler, type StepDefinition, type StepErrorHandler, type ValueSource } from './types.ts';

export interface Fingerprint {
  readonly document: string;
  readonly hash: string;
}

export function fingerprint(
  workflowId: string,
  steps: readonly StepDefinition[],
  errorHandlers: ReadonlyMap<string, StepErrorHandler>,
  globalErrorHandler: GlobalErrorHandler | undefined,
): Fingerprint {
  const document = JSON.stringify({
    workflowId,
    steps: steps.map(describe),
    errorHandlers: [...errorHandlers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([stepId, fn]) => [stepId, source(fn)]),
    globalErrorHandler: globalErrorHandler === undefined ? null : source(globalErrorHandler),
  });
  return { document, hash: createHash('sha256').update(document).digest('hex') };
}

/**
 * A declarative workflow's fingerprint is its document: its steps' functions are generic closures over
 * CEL expressions, whose source text would be the same for every document.
 */
export function documentFingerprint(document: string): Fingerprint {
  return { document, hash: createHash('sha256').update(document).digest('hex') };
}

function describe(def: StepDefinition): Record<string, unknown> {
  const common = {
    kind: def.kind,
    id: def.id,
    conditions: def.conditions.map(source),
    retry: def.retry,
    timeoutMs: def.timeoutMs ?? null,
    outputKey: def.outputKey ?? null,
  };
  switch (def.kind) {
    case 'tool':
      return { ...common, tool: typeof def.tool === 'string' ? def.tool : def.tool.name, args: valueSource(def.args) };
    case 'agent':
      return {
        ...common,
        agent: typeof def.agent === 'string' ? def.agent : def.agent.name,
        input: valueSource(def.input),
        context: valueSource(def.context),
        ...(def.tokenBudget === undefined ? {} : { tokenBudget: def.tokenBudget }),
        ...(def.model === undefined ? {} : { model: def.model }),
      };
    case 'conditional':
      return { ...common, predicate: source(def.predicate), ifTrue: def.ifTrue === undefined ? null : describe(def.ifTrue), ifFalse: def.ifFalse === undefined ? null : describe(def.ifFalse) };
    case 'parallel':
      return { ...common, branches: def.branches.map(describe), waitForAll: def.waitForAll, failurePolicy: def.failurePolicy, minimumSuccessCount: def.minimumSuccessCount ?? null };
    case 'loop':
      return { ...common, body: describe(def.body), condition: source(def.condition), maxIterations: def.maxIterations };
    default:
      return assertNever(def);
  }
}

function valueSource(value: ValueSource<unknown>): unknown {
  switch (value.kind) {
    case 'none':
      return null;
    case 'function':
      return { function: source(value.fn) };
    case 'static':
      return { static: jsonOrDescription(value.value) };
  }
}

function source(fn: (...args: never[]) => unknown): string {
  return Function.prototype.toString.call(fn);
}

function jsonOrDescription(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value) ?? 'null');
  } catch {
    return String(value);
  }
}

/**
 * Validation of a parsed document: the JSON Schema (ajv, stopping at the first problem, reported by its
 * JSON Pointer), then the rules a schema cannot say: unique step ids, registered tool and agent names,
 * CEL expressions that compile (every problem, with its position), and cross-field rules.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { DefinitionIssue } from '../../errors.ts';
import { Limits } from '../../limits.ts';
import { compileExpression, type Expression, type ExpressionScope } from './cel.ts';
import { escapePointer } from './text.ts';
import { CEL_RULE, STEP_KIND_RULE, workflowDocumentSchema, type StepDocument, type WorkflowDocument } from './schema.ts';

/** Names the document may refer to; a check is skipped when its set is not given. */
export interface KnownNames {
  readonly tools?: ReadonlySet<string>;
  readonly agents?: ReadonlySet<string>;
}

export interface ValidatedDocument {
  readonly document: WorkflowDocument;
  /** Every CEL expression, compiled, by the JSON Pointer of its text. */
  readonly expressions: ReadonlyMap<string, Expression>;
}

export type ValidationResult = { readonly ok: true; readonly value: ValidatedDocument } | { readonly ok: false; readonly issues: readonly DefinitionIssue[] };

let validator: ValidateFunction | undefined;
function schemaValidator(): ValidateFunction {
  validator ??= new Ajv({ allErrors: false, strict: false, verbose: true, coerceTypes: false, useDefaults: false }).compile(workflowDocumentSchema);
  return validator;
}

const MAX_ISSUES = 100;

export function validateDocument(value: unknown, known: KnownNames = {}): ValidationResult {
  const validate = schemaValidator();
  if (!validate(value)) return { ok: false, issues: [schemaIssue(validate.errors ?? [])] };
  const document = value as WorkflowDocument;
  const checker = new Checker(known);
  checker.checkDocument(document);
  if (checker.issues.length > 0) return { ok: false, issues: checker.issues.slice(0, MAX_ISSUES) };
  return { ok: true, value: { document, expressions: checker.expressions } };
}

/** ajv reports schema paths relative to a `$ref` target: the failing keyword's schema tells which rule it is. */
function ruleOf(error: ErrorObject): unknown {
  return (error.parentSchema as { description?: unknown } | undefined)?.description;
}

/** The most telling of ajv's errors: a missing or ambiguous step kind, else the deepest (see moreTelling). */
function schemaIssue(errors: readonly ErrorObject[]): DefinitionIssue {
  const kindError = errors.find((e) => e.keyword === 'oneOf' && ruleOf(e) === STEP_KIND_RULE);
  if (kindError !== undefined) {
    return { path: kindError.instancePath, code: 'INVALID_STEP_KIND', message: 'a step needs exactly one of the keys tool, agent, if, parallel, loop' };
  }
  let best: DefinitionIssue | undefined;
  for (const error of errors) {
    const issue = toIssue(error);
    if (best === undefined || moreTelling(issue, best)) best = issue;
  }
  return best ?? { path: '', code: 'INVALID_DOCUMENT', message: 'the document does not match the workflow schema' };
}

/** Deeper is better; at the same place, a wrong type (often one alternative of a `oneOf`) tells least. */
function moreTelling(a: DefinitionIssue, b: DefinitionIssue): boolean {
  const depth = a.path.split('/').length - b.path.split('/').length;
  return depth > 0 || (depth === 0 && b.code === 'WRONG_TYPE' && a.code !== 'WRONG_TYPE');
}

function toIssue(error: ErrorObject): DefinitionIssue {
  const at = error.instancePath;
  const params = error.params as Record<string, unknown>;
  const message = error.message ?? 'is invalid';
  switch (error.keyword) {
    case 'required':
      return { path: `${at}/${String(params.missingProperty)}`, code: 'MISSING_FIELD', message: `missing required field ${String(params.missingProperty)}` };
    case 'additionalProperties':
      return { path: `${at}/${String(params.additionalProperty)}`, code: 'UNKNOWN_FIELD', message: `unknown field ${String(params.additionalProperty)}` };
    case 'type':
      return { path: at, code: 'WRONG_TYPE', message };
    case 'maxLength':
      return ruleOf(error) === CEL_RULE
        ? { path: at, code: 'EXPRESSION_TOO_LONG', message: `a CEL expression may have at most ${Limits.maxExpressionLength} characters` }
        : { path: at, code: 'TOO_LONG', message };
    case 'maxItems':
    case 'maxProperties':
      return { path: at, code: 'TOO_MANY_ITEMS', message };
    case 'minItems':
    case 'minLength':
    case 'minProperties':
      return { path: at, code: 'TOO_FEW_ITEMS', message };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path: at, code: 'OUT_OF_RANGE', message };
    case 'enum':
    case 'const':
      return { path: at, code: 'INVALID_VALUE', message: `${message}: ${JSON.stringify(params.allowedValues ?? params.allowedValue)}` };
    case 'pattern':
      return { path: at, code: 'INVALID_FORMAT', message };
    case 'not':
      return { path: at, code: 'CONFLICTING_FIELDS', message: 'give maxRetries or maxAttempts, not both' };
    default:
      return { path: at, code: 'INVALID_VALUE', message };
  }
}

class Checker {
  readonly issues: DefinitionIssue[] = [];
  readonly expressions = new Map<string, Expression>();
  readonly #ids = new Map<string, string>();
  #steps = 0;

  constructor(private readonly known: KnownNames) {}

  checkDocument(doc: WorkflowDocument): void {
    doc.steps.forEach((step, i) => this.checkStep(step, `/steps/${i}`, 1, true));
    doc.onError?.forEach((rule, i) => {
      if (rule.when !== undefined) this.expression(rule.when, `/onError/${i}/when`, 'errorRule');
    });
  }

  private checkStep(step: StepDocument, at: string, depth: number, topLevel: boolean): void {
    if (this.issues.length >= MAX_ISSUES) return;
    this.#steps += 1;
    if (this.#steps === Limits.maxStepsPerWorkflow + 1) this.issue(at, 'TOO_MANY_STEPS', `a workflow may have at most ${Limits.maxStepsPerWorkflow} steps`);
    if (depth > Limits.maxNestingDepth) {
      this.issue(at, 'TOO_DEEP', `steps may nest at most ${Limits.maxNestingDepth} levels`);
      return;
    }
    const first = this.#ids.get(step.id);
    if (first !== undefined) this.issue(`${at}/id`, 'DUPLICATE_STEP_ID', `step id ${step.id} is already used at ${first}`);
    else this.#ids.set(step.id, `${at}/id`);

    const when = step.when === undefined ? [] : typeof step.when === 'string' ? [step.when] : step.when;
    when.forEach((w, i) => this.expression(w, typeof step.when === 'string' ? `${at}/when` : `${at}/when/${i}`, 'step'));
    if (step.fallback !== undefined) {
      if (!topLevel) this.issue(`${at}/fallback`, 'FALLBACK_NOT_TOP_LEVEL', 'only top-level steps may have a fallback');
      this.checkStep(step.fallback, `${at}/fallback`, depth + 1, false);
    }

    if ('tool' in step) {
      if (this.known.tools !== undefined && !this.known.tools.has(step.tool)) {
        this.issue(`${at}/tool`, 'UNKNOWN_TOOL', `no tool named ${step.tool} is registered`);
      }
      for (const key of Object.keys(step.args ?? {})) this.expression(step.args![key]!, `${at}/args/${escapePointer(key)}`, 'step');
    } else if ('agent' in step) {
      if (this.known.agents !== undefined && !this.known.agents.has(step.agent)) {
        this.issue(`${at}/agent`, 'UNKNOWN_AGENT', `no agent named ${step.agent} is registered`);
      }
      if (step.input !== undefined && step.message !== undefined) this.issue(`${at}/message`, 'CONFLICTING_FIELDS', 'give input (CEL) or message (text), not both');
      if (step.input !== undefined) this.expression(step.input, `${at}/input`, 'step');
      if (step.context !== undefined) this.expression(step.context, `${at}/context`, 'step');
    } else if ('if' in step) {
      this.expression(step.if, `${at}/if`, 'step');
      if (step.then !== undefined) this.checkStep(step.then, `${at}/then`, depth + 1, false);
      if (step.else !== undefined) this.checkStep(step.else, `${at}/else`, depth + 1, false);
    } else if ('parallel' in step) {
      if (step.minimumSuccessCount !== undefined && step.minimumSuccessCount > step.parallel.length) {
        this.issue(`${at}/minimumSuccessCount`, 'OUT_OF_RANGE', `is ${step.minimumSuccessCount} but the step has ${step.parallel.length} branches`);
      }
      step.parallel.forEach((branch, i) => this.checkStep(branch, `${at}/parallel/${i}`, depth + 1, false));
    } else {
      if (step.while !== undefined) this.expression(step.while, `${at}/while`, 'loop');
      this.checkStep(step.loop, `${at}/loop`, depth + 1, false);
    }
  }

  private expression(source: string, at: string, scope: ExpressionScope): void {
    const compiled = compileExpression(source, scope);
    if ('evaluate' in compiled) this.expressions.set(at, compiled);
    else this.issue(at, compiled.code, compiled.message);
  }

  private issue(path: string, code: string, message: string): void {
    if (this.issues.length < MAX_ISSUES) this.issues.push({ path, code, message });
  }
}

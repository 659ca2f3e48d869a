/**
 * A validated document to a Workflow of the ordinary step classes (ToolStep, AgentStep...), with CEL
 * expressions as their condition and parameter functions. The engine compiles that workflow to the one
 * definition model like any other; it cannot tell the two construction styles apart.
 */
import type { WorkflowContext } from '../../context.ts';
import { WorkflowDefinitionError } from '../../errors.ts';
import { AgentStep, ConditionalStep, LoopStep, ParallelStep, ToolStep, WorkflowStep } from '../steps.ts';
import type { ErrorDecision, GlobalErrorHandler } from '../types.ts';
import { Workflow } from '../workflow.ts';
import type { Bindings, Expression } from './cel.ts';
import type { ErrorRuleDocument, StepDocument } from './schema.ts';
import { escapePointer } from './text.ts';
import type { ValidatedDocument } from './validate.ts';

export function compileDocument({ document, expressions }: ValidatedDocument): Workflow {
  const compiler = new DocumentCompiler(expressions);
  const workflow = new Workflow(document.id, document.name ?? document.id, document.description ?? '');
  document.steps.forEach((doc, i) => {
    const at = `/steps/${i}`;
    workflow.addStep(compiler.step(doc, at));
    if (doc.fallback !== undefined) {
      const fallback = compiler.step(doc.fallback, `${at}/fallback`);
      workflow.addErrorHandler(doc.id, () => fallback);
    }
  });
  if (document.onError !== undefined) workflow.globalErrorHandler = compiler.errorHandler(document.onError);
  // The document is the version: its steps' functions are the same closures for every document.
  workflow.definitionDocument = JSON.stringify(document);
  return workflow;
}

function bindings(ctx: WorkflowContext): Bindings {
  return { vars: ctx.variables, metadata: ctx.metadata };
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value;
}

class DocumentCompiler {
  constructor(private readonly expressions: ReadonlyMap<string, Expression>) {}

  step(doc: StepDocument, at: string): WorkflowStep {
    try {
      return this.withCommon(this.kind(doc, at), doc, at);
    } catch (err) {
      // A setter of a step class refused a value the schema let through: report it at the step.
      if (err instanceof WorkflowDefinitionError && !err.issues.some((i) => i.path.startsWith('/'))) {
        throw new WorkflowDefinitionError(err.issues.map((i) => ({ ...i, path: at })));
      }
      throw err;
    }
  }

  errorHandler(rules: readonly ErrorRuleDocument[]): GlobalErrorHandler {
    const compiled = rules.map((rule, i) => ({ rule, when: rule.when === undefined ? undefined : this.expr(`/onError/${i}/when`) }));
    return (error, step, ctx) => {
      const scope = {
        vars: ctx.variables,
        metadata: ctx.metadata,
        error: { code: error.code, message: error.message, retryable: error.retryable },
        step: { id: step.id, path: step.path, kind: step.kind, attempts: step.attempts },
      };
      for (const { rule, when } of compiled) {
        if (when !== undefined && !boolean(when, when.evaluate(scope))) continue;
        const decision: ErrorDecision = { ...rule.annotations, action: rule.action };
        return rule.delaySeconds === undefined ? decision : { ...decision, delaySeconds: rule.delaySeconds };
      }
      return { action: 'fail' };
    };
  }

  private kind(doc: StepDocument, at: string): WorkflowStep {
    if ('tool' in doc) {
      const step = new ToolStep(doc.id, doc.tool);
      const argExprs = Object.keys(doc.args ?? {}).map((key) => [key, this.expr(`${at}/args/${escapePointer(key)}`)] as const);
      const staticArgs = doc.staticArgs;
      if (argExprs.length === 0) return staticArgs === undefined ? step : step.withArgs(staticArgs);
      return step.withParamsFunction((ctx) => {
        const scope = bindings(ctx);
        // fromEntries and spread define own properties: `__proto__` keys stay plain keys.
        return { ...staticArgs, ...Object.fromEntries(argExprs.map(([key, e]) => [key, e.evaluate(scope)])) };
      });
    }
    if ('agent' in doc) {
      const step = new AgentStep(doc.id, doc.agent);
      if (doc.message !== undefined) step.withInput(doc.message);
      if (doc.input !== undefined) {
        const input = this.expr(`${at}/input`);
        step.withInputFunction((ctx) => {
          const value = input.evaluate(bindings(ctx));
          if (typeof value !== 'string') throw new TypeError(`agent input ${JSON.stringify(input.source)} gave ${describe(value)}, not a string`);
          return value;
        });
      }
      if (doc.context !== undefined) {
        const context = this.expr(`${at}/context`);
        step.withContextFunction((ctx) => context.evaluate(bindings(ctx)));
      }
      if (doc.tokenBudget !== undefined) step.withTokenBudget(doc.tokenBudget);
      if (doc.model !== undefined) step.withModel(doc.model);
      return step;
    }
    if ('if' in doc) {
      const predicate = this.expr(`${at}/if`);
      const step = new ConditionalStep(doc.id).condition((ctx) => boolean(predicate, predicate.evaluate(bindings(ctx))));
      if (doc.then !== undefined) step.ifTrue(this.step(doc.then, `${at}/then`));
      if (doc.else !== undefined) step.ifFalse(this.step(doc.else, `${at}/else`));
      return step;
    }
    if ('parallel' in doc) {
      const step = new ParallelStep(
        doc.id,
        doc.parallel.map((branch, i) => this.step(branch, `${at}/parallel/${i}`)),
        doc.waitForAll ?? true,
      );
      if (doc.failurePolicy !== undefined) step.withFailurePolicy(doc.failurePolicy);
      if (doc.minimumSuccessCount !== undefined) step.withMinimumSuccessCount(doc.minimumSuccessCount);
      return step;
    }
    const condition = doc.while === undefined ? undefined : this.expr(`${at}/while`);
    return new LoopStep(
      doc.id,
      this.step(doc.loop, `${at}/loop`),
      condition === undefined ? undefined : (ctx, iteration) => boolean(condition, condition.evaluate({ ...bindings(ctx), iteration: BigInt(iteration) })),
      doc.maxIterations,
    );
  }

  private withCommon(step: WorkflowStep, doc: StepDocument, at: string): WorkflowStep {
    const when = doc.when === undefined ? [] : typeof doc.when === 'string' ? [`${at}/when`] : doc.when.map((_, i) => `${at}/when/${i}`);
    for (const pointer of when) {
      const condition = this.expr(pointer);
      step.addCondition((ctx) => boolean(condition, condition.evaluate(bindings(ctx))));
    }
    if (doc.retry !== undefined) step.withRetry(doc.retry);
    if (doc.timeoutSeconds !== undefined) step.withTimeout(doc.timeoutSeconds);
    if (doc.outputKey !== undefined) step.withOutputKey(doc.outputKey);
    return step;
  }

  private expr(pointer: string): Expression {
    const compiled = this.expressions.get(pointer);
    if (compiled === undefined) throw new Error(`internal: no compiled expression at ${pointer}`);
    return compiled;
  }
}

function boolean(expr: Expression, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`condition ${JSON.stringify(expr.source)} gave ${describe(value)}, not a boolean`);
  return value;
}

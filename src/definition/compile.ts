/**
 * Compiles a workflow's step classes into frozen definitions, resolves tool and agent names, and checks
 * every structural rule and limit, reporting all problems at once. Nothing runs until this passes.
 */
import { Agent } from '../agents/agent.ts';
import { WorkflowDefinitionError, type DefinitionIssue } from '../errors.ts';
import { Limits } from '../limits.ts';
import { Tool } from '../tools/tool.ts';
import { documentFingerprint, fingerprint } from './fingerprint.ts';
import { assertNever, sameItems, type StepDefinition, type StepLike, type WorkflowDefinition } from './types.ts';
import type { WorkflowSource } from './workflow.ts';

export interface Registry {
  readonly tools: ReadonlyMap<string, Tool>;
  readonly agents: ReadonlyMap<string, Agent>;
  readonly hasModelProvider: boolean;
}

export interface CompiledWorkflow extends WorkflowDefinition {
  /** Steps in the definition, nested ones included. */
  readonly stepCount: number;
  /** The version runs are pinned to: the content hash of `document`. */
  readonly definitionHash: string;
  readonly document: string;
}

interface CompiledSteps {
  readonly registry: Registry;
  /** The definitions the steps gave (cached by each step until it changes). */
  readonly given: readonly StepDefinition[];
  readonly steps: readonly StepDefinition[];
  readonly topLevelIds: ReadonlySet<string>;
  readonly stepCount: number;
  /** What the last result was built from, by identity: handlers, name, description. */
  handlers: readonly unknown[];
  result: CompiledWorkflow | undefined;
}

/**
 * Compiles workflows, remembering the last result per workflow: when its steps hand back the same
 * definitions and the registry is the same, resolution and validation are not done again.
 */
export class WorkflowCompiler {
  readonly #cache = new WeakMap<WorkflowSource, CompiledSteps>();

  compile(source: WorkflowSource, registry: Registry): CompiledWorkflow {
    const issues: DefinitionIssue[] = [];
    if (source.steps.length === 0) issues.push({ path: source.id, code: 'EMPTY_WORKFLOW', message: 'workflow has no steps' });
    const given: StepDefinition[] = [];
    for (const step of source.steps) {
      const def = definitionOf(step, undefined, issues);
      if (def !== undefined) given.push(def);
    }
    let compiled = this.#cache.get(source);
    if (compiled === undefined || compiled.registry !== registry || !sameItems(compiled.given, given) || issues.length > 0) {
      const walker = new Walker(registry, issues);
      const steps = Object.freeze(given.map((def) => walker.check(def, undefined, 1)));
      compiled = { registry, given, steps, topLevelIds: new Set(steps.map((s) => s.id)), stepCount: walker.count, handlers: [], result: undefined };
      if (issues.length === 0) this.#cache.set(source, compiled);
    }
    for (const stepId of source.errorHandlers.keys()) {
      if (!compiled.topLevelIds.has(stepId)) {
        issues.push({ path: stepId, code: 'UNKNOWN_STEP', message: `an error handler is registered for ${stepId}, which is not a top-level step of ${source.id}` });
      }
    }
    if (issues.length > 0) throw new WorkflowDefinitionError(issues);
    const handlers = [source.globalErrorHandler, source.name, source.description, source.definitionDocument, ...[...source.errorHandlers].flat()];
    if (compiled.result !== undefined && sameItems(compiled.handlers, handlers)) return compiled.result;
    const print =
      source.definitionDocument === undefined
        ? fingerprint(source.id, compiled.steps, source.errorHandlers, source.globalErrorHandler)
        : documentFingerprint(source.definitionDocument);
    compiled.handlers = handlers;
    compiled.result = Object.freeze({
      id: source.id,
      name: source.name,
      description: source.description,
      steps: compiled.steps,
      errorHandlers: new Map(source.errorHandlers),
      globalErrorHandler: source.globalErrorHandler,
      stepCount: compiled.stepCount,
      definitionHash: print.hash,
      document: print.document,
    });
    return compiled.result;
  }
}

/** A step's definition, or undefined with its problems added to `issues`. */
function definitionOf(step: StepLike, parentPath: string | undefined, issues: DefinitionIssue[]): StepDefinition | undefined {
  try {
    if (typeof step?.toDefinition !== 'function') {
      throw new WorkflowDefinitionError([{ path: joinPath(parentPath, String(step?.id)), code: 'NOT_A_STEP', message: 'expected a step (ToolStep, AgentStep, ConditionalStep, ParallelStep, LoopStep)' }]);
    }
    return step.toDefinition();
  } catch (err) {
    if (err instanceof WorkflowDefinitionError) {
      issues.push(...err.issues.map((i) => ({ ...i, path: joinPath(parentPath, i.path) })));
      return undefined;
    }
    throw err;
  }
}

/**
 * Compiles a replacement step returned by an error handler while a run is live. Its path is prefixed by
 * the failed step's (`{stepId}:recover/...`), so it cannot clash with the workflow's paths.
 */
export function compileReplacement(step: StepLike, registry: Registry, parentPath: string): StepDefinition {
  const issues: DefinitionIssue[] = [];
  const given = definitionOf(step, parentPath, issues);
  const def = given === undefined ? undefined : new Walker(registry, issues).check(given, parentPath, 1);
  if (def === undefined || issues.length > 0) throw new WorkflowDefinitionError(issues);
  return def;
}

class Walker {
  count = 0;
  readonly #seen: Set<string>;

  constructor(
    private readonly registry: Registry,
    private readonly issues: DefinitionIssue[],
  ) {
    this.#seen = new Set();
  }

  /** Checks a definition tree and returns it with tool and agent names resolved. */
  check(def: StepDefinition, parentPath: string | undefined, depth: number): StepDefinition {
    const path = joinPath(parentPath, def.id);
    this.count += 1;
    if (this.count === Limits.maxStepsPerWorkflow + 1) {
      this.issue(path, 'TOO_MANY_STEPS', `a workflow may have at most ${Limits.maxStepsPerWorkflow} steps`);
    }
    if (depth > Limits.maxNestingDepth) {
      this.issue(path, 'TOO_DEEP', `steps may nest at most ${Limits.maxNestingDepth} levels`);
      return def;
    }
    if (def.id.length > Limits.maxStepIdLength || !Limits.stepIdPattern.test(def.id)) {
      this.issue(path, 'INVALID_STEP_ID', `step id must be 1-${Limits.maxStepIdLength} characters of letters, digits, '_', '-' or '.'`);
    }
    if (this.#seen.has(def.id)) this.issue(path, 'DUPLICATE_STEP_ID', `step id ${def.id} is used more than once`);
    this.#seen.add(def.id);

    switch (def.kind) {
      case 'tool': {
        const tool = this.resolveTool(def.tool, path);
        return tool === undefined ? def : Object.freeze({ ...def, tool });
      }
      case 'agent': {
        const agent = this.resolveAgent(def.agent, path);
        if (!this.registry.hasModelProvider && agent?.modelProvider === undefined) {
          this.issue(path, 'MODEL_PROVIDER_MISSING', 'agent steps need a model provider: new WorkflowEngine({ modelProvider }), execute(ctx, { modelProvider }) or the agent\'s own');
        }
        return agent === undefined ? def : Object.freeze({ ...def, agent });
      }
      case 'conditional':
        return Object.freeze({
          ...def,
          ifTrue: def.ifTrue && this.check(def.ifTrue, path, depth + 1),
          ifFalse: def.ifFalse && this.check(def.ifFalse, path, depth + 1),
        });
      case 'parallel':
        if (def.branches.length > Limits.maxParallelBranches) {
          this.issue(path, 'TOO_MANY_BRANCHES', `a parallel step may have at most ${Limits.maxParallelBranches} branches, it has ${def.branches.length}`);
        }
        return Object.freeze({ ...def, branches: Object.freeze(def.branches.map((b) => this.check(b, path, depth + 1))) });
      case 'loop':
        // Iterations extend the path as `loop[i]`; the body is checked once.
        return Object.freeze({ ...def, body: this.check(def.body, `${path}[]`, depth + 1) });
      default:
        return assertNever(def);
    }
  }

  private resolveTool(ref: Tool | string, path: string): Tool | undefined {
    if (ref instanceof Tool) return ref;
    if (typeof ref === 'string') {
      const tool = this.registry.tools.get(ref);
      if (tool === undefined) this.issue(path, 'UNKNOWN_TOOL', `no tool named ${ref} is registered (register it with new WorkflowEngine({ tools }) or pass the Tool)`);
      return tool;
    }
    if (isToolShaped(ref)) return ref;
    this.issue(path, 'INVALID_TOOL', 'tool must be a Tool or a registered tool name');
    return undefined;
  }

  private resolveAgent(ref: Agent | string, path: string): Agent | undefined {
    if (ref instanceof Agent) return ref;
    if (typeof ref === 'string') {
      const agent = this.registry.agents.get(ref);
      if (agent === undefined) this.issue(path, 'UNKNOWN_AGENT', `no agent named ${ref} is registered (register it with new WorkflowEngine({ agents }) or pass the Agent)`);
      return agent;
    }
    this.issue(path, 'INVALID_AGENT', 'agent must be an Agent or a registered agent name');
    return undefined;
  }

  private issue(path: string, code: string, message: string): void {
    this.issues.push({ path, code, message });
  }
}

/** A Tool from another copy of this package (e.g. source and dist side by side) is still a tool. */
function isToolShaped(value: unknown): value is Tool {
  const v = value as Partial<Tool> | null;
  return typeof v?.name === 'string' && typeof v.validateArgs === 'function' && typeof v.execution === 'object';
}

export function joinPath(parentPath: string | undefined, id: string): string {
  return parentPath === undefined ? id : `${parentPath}/${id}`;
}

import { deepFreeze } from './engine/worker-protocol.ts';

export type Variables = Readonly<Record<string, unknown>>;

export interface WorkflowContextInit {
  /** The caller's id for this piece of work (an order, a customer onboarding...). */
  readonly workflowId: string;
  /** Opaque data for tools and agents (a user, a tenant...); passed through, never merged into. */
  readonly userContext?: unknown;
  /** Initial variables. */
  readonly variables?: Record<string, unknown>;
  readonly metadata?: Record<string, unknown>;
  /** The seed's name for initial variables; seeds `variables` (explicit `variables` win on a clash). */
  readonly initialData?: Record<string, unknown>;
}

/** Where a step runs inside a loop: the loop's id and the iteration index (0-based). */
export interface LoopPosition {
  readonly stepId: string;
  readonly iteration: number;
}

const DERIVE: unique symbol = Symbol('derive');

/**
 * A deep, frozen copy of caller data, so that no step can change what another sees through a nested
 * object (and the caller's own objects are left alone). Values a structured clone cannot copy
 * (functions, class instances with private state) keep a shallow freeze.
 */
function frozenCopy(value: Record<string, unknown> | undefined): Variables {
  if (value === undefined) return Object.freeze({});
  let copy: Record<string, unknown>;
  try {
    copy = structuredClone(value);
  } catch {
    return Object.freeze({ ...value });
  }
  return deepFreeze(copy);
}

interface Derived {
  readonly from: WorkflowContext;
  readonly userContext: unknown;
  readonly variables: Variables;
  readonly metadata: Variables;
  readonly loop: LoopPosition | undefined;
  readonly writes: readonly string[] | undefined;
}

/**
 * The state a run carries from step to step. Immutable: the engine derives a new context after each
 * step (merging the step's output into `variables`), so a function given to a step can never change
 * what another branch or a later step sees except through its step's output.
 */
export class WorkflowContext {
  readonly workflowId: string;
  readonly userContext: unknown;
  readonly variables: Variables;
  readonly metadata: Variables;
  readonly initialData: Variables;
  /** Set while a step runs inside a LoopStep (the innermost loop). */
  readonly loop: LoopPosition | undefined;
  /** Keys written since `fork()` (undefined when not forked): what a parallel branch contributes at its join. */
  readonly #writes: readonly string[] | undefined;

  constructor(init: WorkflowContextInit);
  /** @internal */
  constructor(token: typeof DERIVE, derived: Derived);
  constructor(init: WorkflowContextInit | typeof DERIVE, derived?: Derived) {
    if (init === DERIVE) {
      const { from } = derived!;
      this.workflowId = from.workflowId;
      this.userContext = derived!.userContext;
      this.initialData = from.initialData;
      this.variables = derived!.variables;
      this.metadata = derived!.metadata;
      this.loop = derived!.loop;
      this.#writes = derived!.writes;
      return;
    }
    if (typeof init?.workflowId !== 'string' || init.workflowId === '') {
      throw new TypeError('WorkflowContext: workflowId must be a non-empty string');
    }
    this.workflowId = init.workflowId;
    this.userContext = init.userContext;
    this.initialData = frozenCopy(init.initialData);
    this.variables = Object.freeze({ ...this.initialData, ...frozenCopy(init.variables) });
    this.metadata = frozenCopy(init.metadata);
    this.loop = undefined;
    this.#writes = undefined;
  }

  /** A variable's value, or `fallback` when it is absent or undefined. */
  get<T = unknown>(key: string, fallback?: T): T {
    const value = Object.hasOwn(this.variables, key) ? this.variables[key] : undefined;
    return (value === undefined ? fallback : value) as T;
  }

  has(key: string): boolean {
    return Object.hasOwn(this.variables, key) && this.variables[key] !== undefined;
  }

  withVariables(patch: Readonly<Record<string, unknown>>): WorkflowContext {
    const writes = this.#writes === undefined ? undefined : [...this.#writes, ...Object.keys(patch)];
    return this.derive({ variables: Object.freeze({ ...this.variables, ...patch }), writes });
  }

  withVariable(key: string, value: unknown): WorkflowContext {
    return this.withVariables({ [key]: value });
  }

  withMetadata(key: string, value: unknown): WorkflowContext {
    return this.derive({ metadata: Object.freeze({ ...this.metadata, [key]: value }) });
  }

  /** @internal the engine's view for a step inside a loop iteration. */
  inLoop(position: LoopPosition | undefined): WorkflowContext {
    return this.derive({ loop: position });
  }

  /** @internal the context an agent's tool calls run in: the agent step's context as their userContext. */
  withUserContext(userContext: unknown): WorkflowContext {
    return this.derive({ userContext });
  }

  /** @internal a parallel branch's starting point: the same variables, with writes tracked from here. */
  fork(): WorkflowContext {
    return this.derive({ writes: [] });
  }

  /** @internal the variables written since `fork()`, with their latest values. */
  writtenSinceFork(): Record<string, unknown> {
    const written: Record<string, unknown> = {};
    for (const key of this.#writes ?? []) written[key] = this.variables[key];
    return written;
  }

  toJSON(): Record<string, unknown> {
    return {
      workflowId: this.workflowId,
      userContext: this.userContext,
      variables: this.variables,
      metadata: this.metadata,
      initialData: this.initialData,
    };
  }

  private derive(changes: {
    variables?: Variables;
    metadata?: Variables;
    loop?: LoopPosition | undefined;
    writes?: readonly string[] | undefined;
    userContext?: unknown;
  }): WorkflowContext {
    return new WorkflowContext(DERIVE, {
      from: this,
      userContext: 'userContext' in changes ? changes.userContext : this.userContext,
      variables: changes.variables ?? this.variables,
      metadata: changes.metadata ?? this.metadata,
      loop: 'loop' in changes ? changes.loop : this.loop,
      writes: 'writes' in changes ? changes.writes : this.#writes,
    });
  }
}

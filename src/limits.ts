/**
 * Every bound the engine enforces, in one place, so the README's limits table has one source.
 * Engine options may lower or raise the configurable ones.
 */
export const Limits = {
  /** Step ids: letters, digits, `_`, `-`, `.`; they form step paths, so `/`, `[`, `]` and `:` are reserved. */
  stepIdPattern: /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/,
  maxStepIdLength: 128,
  /** Steps in one workflow definition, nested steps included. */
  maxStepsPerWorkflow: 10_000,
  /** Nesting depth of composite steps (parallel in loop in conditional...). */
  maxNestingDepth: 32,
  /** Branches of one parallel step. */
  maxParallelBranches: 256,
  /** Hard cap on a loop's `maxIterations`. */
  maxLoopIterations: 100_000,
  /** Default `maxIterations` of a LoopStep, as in the seed. */
  defaultLoopIterations: 10,
  /** Bytes of a step output once serialised as JSON. */
  maxOutputBytes: 2 * 1024 * 1024,
  /** Retries a step may ask for. */
  maxRetries: 100,
  /** Largest token budget of a step or a run (prompt + completion tokens). */
  maxTokenBudget: 1_000_000_000,
  /** Longest step timeout accepted, in seconds (one day). */
  maxTimeoutSeconds: 86_400,
  /** Timeout given to tool and agent steps that set none, in seconds. */
  defaultStepTimeoutSeconds: 300,
  /** Times a builder-level error handler may answer `retry` for one step. */
  maxHandlerRetries: 3,
  /** Model calls one agent step may make before failing with MAX_TURNS_EXCEEDED. */
  defaultAgentMaxTurns: 20,
  /** Tasks waiting for a pool thread before new ones fail with POOL_QUEUE_FULL. */
  defaultPoolMaxQueue: 4096,
  /** Bytes of a declarative workflow document (YAML or JSON text). */
  maxDefinitionBytes: 1024 * 1024,
  /** Nesting of objects and arrays in a declarative document (steps nest about three levels each). */
  maxDocumentDepth: 128,
  /** Characters of one CEL expression in a declarative document. */
  maxExpressionLength: 2048,
  /** Nodes of one parsed CEL expression. */
  maxExpressionNodes: 512,
  /** Characters of a string a CEL expression builds by concatenation while it is evaluated. */
  maxExpressionStringLength: 1024 * 1024,
} as const;

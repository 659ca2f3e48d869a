import type { ValidateFunction } from 'ajv';
import type { ModelProvider } from './model-provider.ts';
import type { WorkflowContext } from '../context.ts';
import { Limits } from '../limits.ts';
import { compileSchema, Tool, type JsonSchema } from '../tools/tool.ts';

/** The name of the tool through which a model hands off (jaf-py's built-in `handoff` tool). */
export const HANDOFF_TOOL_NAME = 'handoff';

/** Handoff targets per agent; the handoff tool's enum, kept small enough for a model to choose from. */
const MAX_HANDOFF_TARGETS = 64;

/** What an agent's instructions function receives. */
export interface AgentState {
  readonly agentName: string;
  /** The step's context function result, or the run's userContext. */
  readonly context: unknown;
  readonly workflow: WorkflowContext;
}

export interface AgentSpec {
  readonly name: string;
  /** The system prompt, or a function producing it. */
  readonly instructions: string | ((state: AgentState) => string | Promise<string>);
  readonly tools?: readonly Tool[];
  /** Model name passed to the provider (the provider's default when absent). */
  readonly model?: string;
  /**
   * This agent's own provider (e.g. another endpoint or API key: `new OpenAIModelProvider({ baseURL,
   * apiKey })`), instead of the engine's or the run's.
   */
  readonly modelProvider?: ModelProvider;
  /** JSON Schema the final answer must match; the answer is then parsed JSON. */
  readonly outputSchema?: JsonSchema;
  /** Model calls per step before MAX_TURNS_EXCEEDED. */
  readonly maxTurns?: number;
  readonly temperature?: number;
  readonly maxTokens?: number;
  /**
   * Agents this one may hand the conversation to (JAF's `handoffs`): an Agent, or the name of one the
   * engine's registry (or another agent's `handoffs`) knows. The model gets a `handoff` tool for them.
   */
  readonly handoffs?: readonly (Agent | string)[];
}

export class Agent {
  readonly name: string;
  readonly instructions: AgentSpec['instructions'];
  readonly tools: readonly Tool[];
  readonly model: string | undefined;
  readonly modelProvider: ModelProvider | undefined;
  readonly outputSchema: JsonSchema | undefined;
  readonly maxTurns: number;
  readonly temperature: number | undefined;
  readonly maxTokens: number | undefined;
  readonly handoffs: readonly (Agent | string)[];
  readonly #toolsByName: ReadonlyMap<string, Tool>;
  readonly #validateOutput: ValidateFunction | undefined;

  constructor(spec: AgentSpec) {
    if (typeof spec?.name !== 'string' || spec.name === '') throw new TypeError('Agent: name must be a non-empty string');
    if (typeof spec.instructions !== 'string' && typeof spec.instructions !== 'function') {
      throw new TypeError(`Agent ${spec.name}: instructions must be a string or a function (state) => string`);
    }
    const maxTurns = spec.maxTurns ?? Limits.defaultAgentMaxTurns;
    if (!Number.isInteger(maxTurns) || maxTurns < 1 || maxTurns > 1000) throw new TypeError(`Agent ${spec.name}: maxTurns must be an integer from 1 to 1000`);
    this.name = spec.name;
    this.instructions = spec.instructions;
    this.tools = Object.freeze([...(spec.tools ?? [])]);
    this.model = spec.model;
    if (spec.modelProvider !== undefined && typeof spec.modelProvider?.getCompletion !== 'function') {
      throw new TypeError(`Agent ${spec.name}: modelProvider must have a getCompletion(request) method`);
    }
    this.modelProvider = spec.modelProvider;
    this.outputSchema = spec.outputSchema;
    this.maxTurns = maxTurns;
    this.temperature = spec.temperature;
    this.maxTokens = spec.maxTokens;
    const byName = new Map<string, Tool>();
    for (const tool of this.tools) {
      if (byName.has(tool.name)) throw new TypeError(`Agent ${spec.name}: two tools are named ${tool.name}`);
      byName.set(tool.name, tool);
    }
    this.#toolsByName = byName;
    this.handoffs = Object.freeze(checkHandoffs(spec.name, spec.handoffs ?? [], byName));
    this.#validateOutput = spec.outputSchema === undefined ? undefined : compileSchema(spec.outputSchema, `Agent ${spec.name}: outputSchema`);
  }

  /** The names of the agents this one may hand off to, in the order given. */
  get handoffNames(): readonly string[] {
    return this.handoffs.map((h) => (typeof h === 'string' ? h : h.name));
  }

  tool(name: string): Tool | undefined {
    return this.#toolsByName.get(name);
  }

  async systemPrompt(state: AgentState): Promise<string> {
    return typeof this.instructions === 'string' ? this.instructions : await this.instructions(state);
  }

  /** Checks a parsed final answer against outputSchema; returns a message naming the field on failure. */
  checkOutput(value: unknown): string | undefined {
    const validate = this.#validateOutput;
    if (validate === undefined || validate(value)) return undefined;
    const first = validate.errors?.[0];
    return `output${first?.instancePath.replaceAll('/', '.') ?? ''} ${first?.message ?? 'does not match the schema'}`;
  }
}

function checkHandoffs(agentName: string, handoffs: readonly (Agent | string)[], tools: ReadonlyMap<string, Tool>): (Agent | string)[] {
  if (!Array.isArray(handoffs)) throw new TypeError(`Agent ${agentName}: handoffs must be an array of Agents or agent names`);
  if (handoffs.length > MAX_HANDOFF_TARGETS) throw new TypeError(`Agent ${agentName}: handoffs lists ${handoffs.length} agents; at most ${MAX_HANDOFF_TARGETS}`);
  if (handoffs.length > 0 && tools.has(HANDOFF_TOOL_NAME)) {
    throw new TypeError(`Agent ${agentName}: a tool named ${HANDOFF_TOOL_NAME} clashes with the handoff tool its handoffs need`);
  }
  const seen = new Set<string>();
  for (const [index, target] of handoffs.entries()) {
    const name = typeof target === 'string' ? target : target instanceof Agent ? target.name : undefined;
    if (name === undefined || name === '') throw new TypeError(`Agent ${agentName}: handoffs[${index}] must be an Agent or a non-empty agent name`);
    if (name === agentName) throw new TypeError(`Agent ${agentName}: handoffs[${index}] names the agent itself`);
    if (seen.has(name)) throw new TypeError(`Agent ${agentName}: handoffs lists ${name} twice`);
    seen.add(name);
  }
  return [...handoffs];
}

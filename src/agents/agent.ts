import type { ValidateFunction } from 'ajv';
import type { WorkflowContext } from '../context.ts';
import { Limits } from '../limits.ts';
import { compileSchema, Tool, type JsonSchema } from '../tools/tool.ts';

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
  /** JSON Schema the final answer must match; the answer is then parsed JSON. */
  readonly outputSchema?: JsonSchema;
  /** Model calls per step before MAX_TURNS_EXCEEDED. */
  readonly maxTurns?: number;
  readonly temperature?: number;
  readonly maxTokens?: number;
}

export class Agent {
  readonly name: string;
  readonly instructions: AgentSpec['instructions'];
  readonly tools: readonly Tool[];
  readonly model: string | undefined;
  readonly outputSchema: JsonSchema | undefined;
  readonly maxTurns: number;
  readonly temperature: number | undefined;
  readonly maxTokens: number | undefined;
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
    this.#validateOutput = spec.outputSchema === undefined ? undefined : compileSchema(spec.outputSchema, `Agent ${spec.name}: outputSchema`);
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

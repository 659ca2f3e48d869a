/**
 * `jafw serve --config FILE`: the coordinator's configuration in YAML (or JSON). It registers agents
 * (name, instructions, model, tools, output schema, handoffs) and module tools, which declarative
 * workflows then reference by name. Checked with a JSON Schema (ajv) before anything is built; every
 * problem names its path in the file.
 *
 * ```yaml
 * tools:
 *   - name: word_count
 *     module: ./tools/word-count.js        # relative to this file; runs on the pool
 *     description: Counts words
 *     parameters: { type: object, properties: { text: { type: string } }, required: [text] }
 * agents:
 *   - name: summarizer
 *     instructions: You summarise support tickets in one sentence.
 *     model: gpt-4o-mini
 *     tools: [word_count, echo]            # tools from this file or built in
 *     outputSchema: { type: object, properties: { summary: { type: string } }, required: [summary] }
 *     maxTurns: 5
 *     handoffs: [escalation]
 * ```
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { Agent } from '../agents/agent.ts';
import { OPENAI_PROVIDER_ENV, OpenAIModelProvider } from '../agents/openai-provider.ts';
import { Tool, type JsonSchema } from '../tools/tool.ts';
import { UsageError } from './io.ts';

const NAME = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$' } as const;

export const configSchema = {
  $id: 'https://jaf-workflows.dev/schema/coordinator-config.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    tools: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'module'],
        properties: {
          name: NAME,
          module: { type: 'string', minLength: 1, maxLength: 4096 },
          description: { type: 'string', maxLength: 4096 },
          parameters: { type: 'object' },
        },
      },
    },
    agents: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'instructions'],
        properties: {
          name: NAME,
          instructions: { type: 'string', minLength: 1, maxLength: 65536 },
          model: { type: 'string', minLength: 1, maxLength: 256 },
          tools: { type: 'array', maxItems: 256, uniqueItems: true, items: NAME },
          outputSchema: { type: 'object' },
          maxTurns: { type: 'integer', minimum: 1, maximum: 1000 },
          temperature: { type: 'number', minimum: 0, maximum: 2 },
          maxTokens: { type: 'integer', minimum: 1, maximum: 1_000_000 },
          handoffs: { type: 'array', maxItems: 64, uniqueItems: true, items: NAME },
          baseURL: { type: 'string', pattern: '^https?://', maxLength: 2048 },
          apiKeyEnv: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
        },
      },
    },
  },
} as const;

interface ToolEntry {
  readonly name: string;
  readonly module: string;
  readonly description?: string;
  readonly parameters?: JsonSchema;
}

interface AgentEntry {
  readonly name: string;
  readonly instructions: string;
  readonly model?: string;
  readonly tools?: readonly string[];
  readonly outputSchema?: JsonSchema;
  readonly maxTurns?: number;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly handoffs?: readonly string[];
  /** The agent's own OpenAI-compatible endpoint (else the coordinator's). */
  readonly baseURL?: string;
  /** The environment variable holding that endpoint's API key (never the key itself in the file). */
  readonly apiKeyEnv?: string;
}

interface ConfigDocument {
  readonly tools?: readonly ToolEntry[];
  readonly agents?: readonly AgentEntry[];
}

export interface CoordinatorConfig {
  readonly tools: readonly Tool[];
  readonly agents: readonly Agent[];
}

const MAX_CONFIG_BYTES = 1024 * 1024;
const validateConfig = new Ajv({ allErrors: false, strict: true }).compile(configSchema);

function describe(error: ErrorObject | undefined): string {
  if (error === undefined) return 'does not match the configuration schema';
  const where = error.instancePath === '' ? '/' : error.instancePath;
  if (error.keyword === 'additionalProperties') return `${where}: unknown field ${String(error.params.additionalProperty)}`;
  if (error.keyword === 'required') return `${where}: missing field ${String(error.params.missingProperty)}`;
  return `${where}: ${error.message ?? 'is invalid'}`;
}

/**
 * Reads and builds a configuration. `available` are the tools already registered (built-in, example):
 * agents may name those too. Throws UsageError naming the file and the path of the first problem.
 */
export function loadCoordinatorConfig(
  file: string,
  available: readonly Tool[],
  availableAgents: readonly Agent[] = [],
  env: Readonly<Record<string, string | undefined>> = process.env,
): CoordinatorConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--config: cannot read ${file}: ${(err as Error).message}`);
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new UsageError(`--config ${file}: at most ${MAX_CONFIG_BYTES} bytes`);
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new UsageError(`--config ${file}: not valid YAML: ${(err as Error).message}`);
  }
  if (!validateConfig(document ?? {})) throw new UsageError(`--config ${file}: ${describe(validateConfig.errors?.[0])}`);
  return build((document ?? {}) as ConfigDocument, file, available, new Set(availableAgents.map((a) => a.name)), env);
}

function build(
  config: ConfigDocument,
  file: string,
  available: readonly Tool[],
  takenAgentNames: ReadonlySet<string>,
  env: Readonly<Record<string, string | undefined>>,
): CoordinatorConfig {
  const base = dirname(resolve(file));
  const toolsByName = new Map(available.map((tool) => [tool.name, tool]));
  const tools: Tool[] = [];
  for (const [index, entry] of (config.tools ?? []).entries()) {
    const at = `/tools/${index}`;
    if (toolsByName.has(entry.name)) throw new UsageError(`--config ${file}: ${at}/name: a tool named ${entry.name} is already registered`);
    const modulePath = isAbsolute(entry.module) ? entry.module : resolve(base, entry.module);
    try {
      const tool = new Tool({
        name: entry.name,
        module: pathToFileURL(modulePath),
        ...(entry.description === undefined ? {} : { description: entry.description }),
        ...(entry.parameters === undefined ? {} : { parameters: entry.parameters }),
      });
      tools.push(tool);
      toolsByName.set(tool.name, tool);
    } catch (err) {
      throw new UsageError(`--config ${file}: ${at}: ${(err as Error).message}`);
    }
  }
  const agentNames = new Set<string>();
  for (const [index, entry] of (config.agents ?? []).entries()) {
    if (agentNames.has(entry.name) || takenAgentNames.has(entry.name)) throw new UsageError(`--config ${file}: /agents/${index}/name: an agent named ${entry.name} is already registered`);
    agentNames.add(entry.name);
  }
  const agents: Agent[] = [];
  for (const [index, entry] of (config.agents ?? []).entries()) {
    const at = `/agents/${index}`;
    const agentTools = (entry.tools ?? []).map((name, i) => {
      const tool = toolsByName.get(name);
      if (tool === undefined) throw new UsageError(`--config ${file}: ${at}/tools/${i}: no tool named ${name} (known: ${[...toolsByName.keys()].sort().join(', ')})`);
      return tool;
    });
    for (const [i, target] of (entry.handoffs ?? []).entries()) {
      if (!agentNames.has(target)) throw new UsageError(`--config ${file}: ${at}/handoffs/${i}: no agent named ${target} in this file`);
    }
    if (entry.apiKeyEnv !== undefined && entry.baseURL === undefined) throw new UsageError(`--config ${file}: ${at}/apiKeyEnv: needs baseURL`);
    if (entry.apiKeyEnv !== undefined && (env[entry.apiKeyEnv] ?? '') === '') {
      throw new UsageError(`--config ${file}: ${at}/apiKeyEnv: the environment variable ${entry.apiKeyEnv} is not set`);
    }
    try {
      const provider =
        entry.baseURL === undefined
          ? undefined
          : new OpenAIModelProvider({
              baseURL: entry.baseURL,
              apiKey: entry.apiKeyEnv === undefined ? 'unused' : env[entry.apiKeyEnv]!,
              // Only the default model comes from the environment: the endpoint and key are the agent's own.
              env: { [OPENAI_PROVIDER_ENV.model]: env[OPENAI_PROVIDER_ENV.model] },
            });
      agents.push(
        new Agent({
          ...(provider === undefined ? {} : { modelProvider: provider }),
          name: entry.name,
          instructions: entry.instructions,
          tools: agentTools,
          ...(entry.model === undefined ? {} : { model: entry.model }),
          ...(entry.outputSchema === undefined ? {} : { outputSchema: entry.outputSchema }),
          ...(entry.maxTurns === undefined ? {} : { maxTurns: entry.maxTurns }),
          ...(entry.temperature === undefined ? {} : { temperature: entry.temperature }),
          ...(entry.maxTokens === undefined ? {} : { maxTokens: entry.maxTokens }),
          ...(entry.handoffs === undefined ? {} : { handoffs: [...entry.handoffs] }),
        }),
      );
    } catch (err) {
      throw new UsageError(`--config ${file}: ${at}: ${(err as Error).message}`);
    }
  }
  return { tools, agents };
}

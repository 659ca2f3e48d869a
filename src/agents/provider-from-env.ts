/**
 * Which model provider a process uses, from its environment: an OpenAI-compatible endpoint when one is
 * configured (OPENAI_API_KEY or OPENAI_BASE_URL), else the given offline provider. Used by `jafw serve`
 * and the e-commerce example, so both run against a real model with nothing but environment variables.
 */
import type { ModelProvider } from './model-provider.ts';
import { OPENAI_PROVIDER_ENV, OpenAIModelProvider } from './openai-provider.ts';

export interface ChosenProvider {
  readonly provider: ModelProvider;
  /** For start-up lines: which endpoint and model, or that no model is called. */
  readonly description: string;
  readonly kind: 'openai-compatible' | 'offline';
}

type Env = Readonly<Record<string, string | undefined>>;

const set = (value: string | undefined): value is string => value !== undefined && value.trim() !== '';

export function modelProviderFromEnv(env: Env, offline: () => ModelProvider, offlineDescription: string): ChosenProvider {
  const apiKey = env[OPENAI_PROVIDER_ENV.apiKey];
  const baseURL = env[OPENAI_PROVIDER_ENV.baseURL];
  if (!set(apiKey) && !set(baseURL)) return { provider: offline(), description: offlineDescription, kind: 'offline' };
  // Local servers (Ollama, vLLM) check no key, but the SDK wants one.
  const provider = new OpenAIModelProvider({ env, ...(set(apiKey) ? {} : { apiKey: 'unused' }), stream: env.JAF_MODEL_STREAM === '1' });
  const model = provider.defaultModel ?? 'each agent names its own';
  return { provider, description: `the OpenAI-compatible endpoint ${set(baseURL) ? baseURL : 'https://api.openai.com/v1'} (model: ${model})`, kind: 'openai-compatible' };
}

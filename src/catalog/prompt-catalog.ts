import type { Prompt } from '@modelcontextprotocol/client';
import { byServerName, claimName, exposedName } from './naming.js';

export interface UpstreamPrompts {
  server: string;
  prefix: string;
  separator: string;
  prompts: readonly Prompt[];
}

export interface PromptRoute {
  server: string;
  originalName: string;
}

export interface PromptCatalog {
  readonly prompts: readonly Prompt[];
  readonly routes: ReadonlyMap<string, PromptRoute>;
}

export const EMPTY_PROMPTS: PromptCatalog = { prompts: [], routes: new Map() };

/** Prompts are namespaced exactly like tools: `<prefix><separator><name>`, collisions by server name. */
export function buildPromptCatalog(upstreams: readonly UpstreamPrompts[]): PromptCatalog {
  const prompts: Prompt[] = [];
  const routes = new Map<string, PromptRoute>();
  for (const upstream of byServerName(upstreams)) {
    for (const prompt of upstream.prompts) {
      const wanted = exposedName(upstream.prefix, upstream.separator, prompt.name);
      const name = claimName(wanted, `${upstream.server}\0${prompt.name}`, routes);
      routes.set(name, { server: upstream.server, originalName: prompt.name });
      prompts.push({ ...prompt, name });
    }
  }
  return { prompts, routes };
}

import type { Client, Prompt, Resource, ResourceTemplateType, ServerCapabilities, Tool } from '@modelcontextprotocol/client';
import { LatestWins } from './latest-wins.js';

/** Which lists to fetch. */
export interface ListSelection {
  tools?: boolean;
  prompts?: boolean;
  resources?: boolean;
}

export const EVERY_LIST: ListSelection = { tools: true, prompts: true, resources: true };

/**
 * The last lists an upstream reported. They are kept while it is down: a restart does not make
 * its tools flicker in and out of every client's list.
 */
export class UpstreamLists {
  #tools: readonly Tool[] = [];
  #prompts: readonly Prompt[] = [];
  #resources: readonly Resource[] = [];
  #templates: readonly ResourceTemplateType[] = [];
  /** One sequence per list: only the newest request's answer is applied (see `LatestWins`). */
  readonly #sync = { tools: new LatestWins(), prompts: new LatestWins(), resources: new LatestWins(), templates: new LatestWins() };

  get tools(): readonly Tool[] {
    return this.#tools;
  }

  get prompts(): readonly Prompt[] {
    return this.#prompts;
  }

  get resources(): readonly Resource[] {
    return this.#resources;
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#templates;
  }

  /**
   * Fetches the selected lists that `capabilities` offer (a list not offered is empty). Each list
   * applies only the answer to its newest request, and only while `current()` holds (the client
   * is still the connection's): a slower, older answer arriving last is dropped. The SDK client
   * follows the pages, and serves a list again from its cache while the `ttlMs` a 2026 server
   * gave it lasts (a `list_changed` drops it first).
   */
  async fetch(client: Client, capabilities: ServerCapabilities | undefined, which: ListSelection, timeoutMs: number, current: () => boolean): Promise<void> {
    const options = { timeout: timeoutMs };
    const sync = this.#sync;
    await Promise.all([
      which.tools &&
        sync.tools.run(
          async () => (capabilities?.tools ? (await client.listTools(undefined, options)).tools : []),
          (tools) => current() && (this.#tools = tools),
        ),
      which.prompts &&
        sync.prompts.run(
          async () => (capabilities?.prompts ? (await client.listPrompts(undefined, options)).prompts : []),
          (prompts) => current() && (this.#prompts = prompts),
        ),
      which.resources &&
        sync.resources.run(
          async () => (capabilities?.resources ? (await client.listResources(undefined, options)).resources : []),
          (resources) => current() && (this.#resources = resources),
        ),
      which.resources &&
        sync.templates.run(
          async () => (capabilities?.resources ? (await client.listResourceTemplates(undefined, options).catch(() => ({ resourceTemplates: [] }))).resourceTemplates : []),
          (templates) => current() && (this.#templates = templates),
        ),
    ]);
  }
}

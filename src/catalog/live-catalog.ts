import type { Prompt, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ToolsFilter } from '../config/schema.js';
import { buildPromptCatalog, EMPTY_PROMPTS, type PromptCatalog } from './prompt-catalog.js';
import { buildResourceCatalog, EMPTY_RESOURCES, type ResourceCatalog } from './resource-catalog.js';
import { buildToolCatalog, EMPTY_CATALOG, type ToolCatalog, type ToolCatalogOptions } from './tool-catalog.js';
import { ToolSearchIndex } from './tool-search.js';

/** Everything one upstream offers, as the catalog needs it. */
export interface UpstreamOffer {
  server: string;
  prefix: string;
  separator: string;
  tags: readonly string[];
  filter?: ToolsFilter | undefined;
  tools: readonly Tool[];
  prompts: readonly Prompt[];
  resources: readonly Resource[];
  templates: readonly ResourceTemplate[];
}

export interface CatalogChanges {
  tools: boolean;
  prompts: boolean;
  resources: boolean;
}

/**
 * The current merged catalogs, rebuilt only when an upstream's offer or state changes, never
 * per request. `update` reports which lists clients see differently, so sessions are told
 * about real changes only.
 */
export class LiveCatalog {
  readonly #options: ToolCatalogOptions;
  #tools: ToolCatalog = EMPTY_CATALOG;
  #searchIndex: ToolSearchIndex | undefined;
  #toolsJson: string | undefined;
  #prompts: PromptCatalog = EMPTY_PROMPTS;
  #resources: ResourceCatalog = EMPTY_RESOURCES;
  #signatures = { tools: '[]', prompts: '[]', resources: '[[],[]]' };

  constructor(options: ToolCatalogOptions = {}) {
    this.#options = options;
  }

  /** The merged tools (kept as `current` for the tool paths). */
  get current(): ToolCatalog {
    return this.#tools;
  }

  /** `tools/list`'s `tools` array as JSON, serialised once per change (the list is read far more often than it changes). */
  get toolsJson(): string {
    this.#toolsJson ??= JSON.stringify(this.#tools.tools);
    return this.#toolsJson;
  }

  /** The search index of the current tools, built on first use after each change. */
  get searchIndex(): ToolSearchIndex {
    this.#searchIndex ??= new ToolSearchIndex(this.#tools.upstreamTools);
    return this.#searchIndex;
  }

  get prompts(): PromptCatalog {
    return this.#prompts;
  }

  get resources(): ResourceCatalog {
    return this.#resources;
  }

  update(offers: readonly UpstreamOffer[]): CatalogChanges {
    this.#tools = buildToolCatalog(offers, this.#options);
    this.#searchIndex = undefined;
    this.#toolsJson = undefined;
    this.#prompts = buildPromptCatalog(offers);
    this.#resources = buildResourceCatalog(offers);
    const signatures = {
      tools: JSON.stringify(this.#tools.tools),
      prompts: JSON.stringify(this.#prompts.prompts),
      resources: JSON.stringify([this.#resources.resources, this.#resources.templates]),
    };
    const changes = {
      tools: signatures.tools !== this.#signatures.tools,
      prompts: signatures.prompts !== this.#signatures.prompts,
      resources: signatures.resources !== this.#signatures.resources,
    };
    this.#signatures = signatures;
    return changes;
  }
}

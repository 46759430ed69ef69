import type { Prompt, Resource, ResourceTemplateType as ResourceTemplate, Tool } from '@modelcontextprotocol/client';
import type { AccessLevel } from '../auth/access-policy.js';
import type { ToolsFilter } from '../config/schema.js';
import { fullView, restrictedView, type CatalogView, type Visibility } from './catalog-view.js';
import { offersWithAppResourceUris } from './mcp-app-uris.js';
import { buildPromptCatalog, EMPTY_PROMPTS, type PromptCatalog } from './prompt-catalog.js';
import { buildResourceCatalog, EMPTY_RESOURCES, type ResourceCatalog } from './resource-catalog.js';
import { buildToolCatalog, EMPTY_CATALOG, type CatalogTool, type ToolCatalog, type ToolCatalogOptions } from './tool-catalog.js';
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

/** A caller's rights as the catalog needs them: callers with equal rights share one `key`. */
export interface Viewer {
  readonly key: string;
  readonly unrestricted: boolean;
  readonly visible: Visibility;
  /** The level on a server or one of its tools; broadcasts in a view name only what is at `call`. */
  level(server: string, tool?: string): AccessLevel;
}

/** A caller's view with its `tools/list` answer serialised (and UTF-8 encoded) once. */
export interface CachedView {
  readonly view: CatalogView;
  readonly toolsJson: string;
  readonly toolsBytes: Buffer;
}

const MAX_CACHED_VIEWS = 1000;

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
  #toolsByName: ReadonlyMap<string, CatalogTool> | undefined;
  #toolsJson: string | undefined;
  #prompts: PromptCatalog = EMPTY_PROMPTS;
  #resources: ResourceCatalog = EMPTY_RESOURCES;
  #signatures = { tools: '[]', prompts: '[]', resources: '[[],[]]' };
  #views = new Map<string, CachedView>();

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

  /** The upstreams' own tools by exposed name, indexed on first use after each change. */
  get upstreamToolsByName(): ReadonlyMap<string, CatalogTool> {
    this.#toolsByName ??= new Map(this.#tools.upstreamTools.map((entry) => [entry.tool.name, entry]));
    return this.#toolsByName;
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

  /** What `viewer` may see, built once per catalog change and set of rights. */
  viewFor(viewer: Viewer): CachedView {
    const key = viewer.unrestricted ? '*' : viewer.key;
    let cached = this.#views.get(key);
    if (!cached) {
      if (this.#views.size >= MAX_CACHED_VIEWS) this.#views.clear();
      const view = viewer.unrestricted
        ? fullView(this.#tools, this.#prompts, this.#resources)
        : restrictedView(this.#tools, this.#prompts, this.#resources, viewer.visible, (server, tool) => viewer.level(server, tool) === 'call');
      let json: string | undefined;
      let bytes: Buffer | undefined;
      const toolsJson = viewer.unrestricted ? () => this.toolsJson : () => (json ??= JSON.stringify(view.tools));
      cached = {
        view,
        get toolsJson() {
          return toolsJson();
        },
        get toolsBytes() {
          bytes ??= Buffer.from(toolsJson());
          return bytes;
        },
      };
      this.#views.set(key, cached);
    }
    return cached;
  }

  update(offers: readonly UpstreamOffer[]): CatalogChanges {
    this.#resources = buildResourceCatalog(offers);
    // Resources first: an app tool's `ui://` reference is rewritten to where its own server's resource is exposed.
    this.#tools = buildToolCatalog(offersWithAppResourceUris(offers, this.#resources), this.#options);
    this.#views.clear();
    this.#searchIndex = undefined;
    this.#toolsByName = undefined;
    this.#toolsJson = undefined;
    this.#prompts = buildPromptCatalog(offers);
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

import MiniSearch from 'minisearch';
import type { Tool } from '@modelcontextprotocol/client';
import type { CatalogTool } from './tool-catalog.js';

export interface ToolHit {
  name: string;
  score: number;
  tool: Tool;
}

interface Document {
  id: number;
  name: string;
  title: string;
  description: string;
  parameters: string;
}

/**
 * BM25 ranking (MiniSearch's BM25+) over tool names, titles, descriptions and parameter names
 * and descriptions. Names are split on `_`, `-`, `.` and camelCase, so
 * `github__search_repositories` matches "search repositories". Built once per catalog.
 */
export class ToolSearchIndex {
  readonly #tools: readonly CatalogTool[];
  readonly #index: MiniSearch<Document>;

  constructor(tools: readonly CatalogTool[]) {
    this.#tools = tools;
    this.#index = new MiniSearch<Document>({
      fields: ['name', 'title', 'description', 'parameters'],
      tokenize,
      processTerm: (term) => (term.length > 1 ? term.toLowerCase() : null),
      searchOptions: {
        boost: { name: 3, title: 2, parameters: 1.2 },
        prefix: (term) => term.length > 3,
        fuzzy: (term) => (term.length > 5 ? 0.2 : false),
        combineWith: 'OR',
      },
    });
    this.#index.addAll(tools.map(({ tool }, id) => toDocument(id, tool)));
  }

  /** The best `limit` hits, among the tools `include` accepts (by exposed name) when given. */
  search(query: string, limit: number, include?: (name: string) => boolean): ToolHit[] {
    const filter = include && ((hit: { id: unknown }) => include(this.#tools[hit.id as number]!.tool.name));
    return this.#index
      .search(withSynonyms(query), filter ? { filter } : {})
      .slice(0, limit)
      .map((hit) => {
        const { tool } = this.#tools[hit.id as number]!;
        return { name: tool.name, score: Math.round(hit.score * 1000) / 1000, tool };
      });
  }
}

function toDocument(id: number, tool: Tool): Document {
  const properties = (tool.inputSchema?.properties ?? {}) as Record<string, { description?: string }>;
  const parameters = Object.entries(properties)
    .map(([key, value]) => `${key} ${typeof value?.description === 'string' ? value.description : ''}`)
    .join(' ');
  return { id, name: tool.name, title: tool.title ?? tool.annotations?.title ?? '', description: tool.description ?? '', parameters };
}

/**
 * Tool names use a few stock verbs (create, list, get, update, delete); people and models ask
 * with many more. Each recognised word brings its stock verbs along as extra query terms.
 */
const VERB_SYNONYMS: Record<string, string[]> = {
  send: ['create', 'post'], post: ['create'], add: ['create'], new: ['create'], make: ['create'], open: ['create'], write: ['create', 'update'],
  show: ['list', 'get'], find: ['search', 'list', 'get'], fetch: ['get', 'list'], view: ['get', 'list'], read: ['get', 'read'], lookup: ['get', 'search'],
  remove: ['delete'], drop: ['delete'], erase: ['delete'], destroy: ['delete'], cancel: ['delete'],
  edit: ['update'], modify: ['update'], change: ['update'], rename: ['update'],
};

function withSynonyms(query: string): string {
  const extra = tokenize(query).flatMap((word) => VERB_SYNONYMS[word.toLowerCase()] ?? []);
  return extra.length ? `${query} ${extra.join(' ')}` : query;
}

/** Words, with identifiers split at `_`, `-`, `.`, `/` and lower-to-upper case changes. */
function tokenize(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

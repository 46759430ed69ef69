import type { Tool } from '@modelcontextprotocol/client';
import picomatch from 'picomatch';
import type { ToolsFilter } from '../config/schema.js';
import { generatedTools, type GeneratedToolsOptions, type ServerTools } from './generated-tools.js';
import { byServerName, claimName, exposedName, legalName } from './naming.js';

/** What one upstream contributes to the catalog. */
export interface UpstreamTools {
  server: string;
  prefix: string;
  separator: string;
  tags?: readonly string[];
  tools: readonly Tool[];
  filter?: ToolsFilter | undefined;
}

/** Where an exposed tool name leads. */
export type ToolRoute =
  | { kind: 'upstream'; server: string; originalName: string }
  /** `broadcast__<tool>`: the upstream tool `tool` on each of `servers`. */
  | { kind: 'broadcast'; tool: string; servers: readonly string[] }
  /** `broadcast__by_tag__<tag>`: any tool on the servers tagged `tag`. */
  | { kind: 'tag'; tag: string; servers: readonly string[] }
  | { kind: 'search' }
  | { kind: 'call' };

export interface CatalogTool {
  tool: Tool;
  route: ToolRoute;
}

/** The merged, namespaced view of every upstream's tools. Immutable: a change builds a new one. */
export interface ToolCatalog {
  /** What `tools/list` shows, in a stable order. */
  readonly tools: readonly Tool[];
  /** Every callable name, listed or not. */
  readonly routes: ReadonlyMap<string, ToolRoute>;
  /** The upstreams' own tools as exposed (what tool search ranks). */
  readonly upstreamTools: readonly CatalogTool[];
  /** What the generated tools were made from: each server's tags and kept tools, so a caller's view can remake them from its part. */
  readonly sources: readonly ServerTools[];
}

export const EMPTY_CATALOG: ToolCatalog = { tools: [], routes: new Map(), upstreamTools: [], sources: [] };

export interface ToolCatalogOptions extends GeneratedToolsOptions {
  /** `search` lists only the generated tools; everything stays callable. */
  exposure?: 'all' | 'search';
}

/**
 * Merges upstream tool lists under collision-free names, then adds the generated tools
 * (broadcasts, search). When two tools want the same exposed name, the server whose name
 * sorts first keeps it and the other gets a hash suffix derived from its server and tool
 * name, so the outcome never depends on connection order. Upstream tools win over
 * generated ones.
 */
export function buildToolCatalog(upstreams: readonly UpstreamTools[], options: ToolCatalogOptions = {}): ToolCatalog {
  const routes = new Map<string, ToolRoute>();
  const upstreamTools: CatalogTool[] = [];
  const visibleByServer = new Map<string, Tool[]>();
  const ordered = byServerName(upstreams);
  for (const upstream of ordered) {
    const visible = toolVisibility(upstream.filter);
    const kept: Tool[] = [];
    for (const tool of upstream.tools) {
      if (!visible(tool.name)) continue;
      kept.push(tool);
      const override = upstream.filter?.overrides?.[tool.name];
      const wanted = override?.name ? legalName(override.name) : exposedName(upstream.prefix, upstream.separator, tool.name);
      const name = claimName(wanted, `${upstream.server}\0${tool.name}`, routes);
      const route: ToolRoute = { kind: 'upstream', server: upstream.server, originalName: tool.name };
      routes.set(name, route);
      const exposed: Tool = { ...tool, name };
      if (override?.title !== undefined) exposed.title = override.title;
      if (override?.description !== undefined) exposed.description = override.description;
      if (override?.annotations !== undefined) exposed.annotations = { ...tool.annotations, ...override.annotations };
      upstreamTools.push({ tool: exposed, route });
    }
    visibleByServer.set(upstream.server, kept);
  }

  const sources = ordered.map((u) => ({ server: u.server, tags: u.tags ?? [], tools: visibleByServer.get(u.server) ?? [] }));
  const generated = generatedTools(sources, options);
  const searchMode = options.exposure === 'search';
  const tools: Tool[] = searchMode ? [] : upstreamTools.map((t) => t.tool);
  for (const { tool, route, searchModeOnly } of generated) {
    const name = claimName(tool.name, `conflux\0${tool.name}`, routes);
    routes.set(name, route);
    if (searchMode || !searchModeOnly) tools.push(name === tool.name ? tool : { ...tool, name });
  }
  return { tools, routes, upstreamTools, sources };
}

/** A predicate over an upstream's own tool names, from its allow/deny globs. */
export function toolVisibility(filter: ToolsFilter | undefined): (name: string) => boolean {
  const allow = filter?.allow?.length ? picomatch(filter.allow) : undefined;
  const deny = filter?.deny?.length ? picomatch(filter.deny) : undefined;
  return (name) => (allow === undefined || allow(name)) && (deny === undefined || !deny(name));
}

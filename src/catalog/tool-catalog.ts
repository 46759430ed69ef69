import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import picomatch from 'picomatch';
import type { ToolsFilter } from '../config/schema.js';
import { byServerName, claimName, exposedName, legalName } from './naming.js';

/** What one upstream contributes to the catalog. */
export interface UpstreamTools {
  server: string;
  prefix: string;
  separator: string;
  tools: readonly Tool[];
  filter?: ToolsFilter | undefined;
}

/** Where an exposed tool name leads. */
export interface ToolRoute {
  server: string;
  originalName: string;
}

/** The merged, namespaced view of every upstream's tools. Immutable: a change builds a new one. */
export interface ToolCatalog {
  /** Exposed tools in a stable order (by server name, then the upstream's own order). */
  readonly tools: readonly Tool[];
  readonly routes: ReadonlyMap<string, ToolRoute>;
}

export const EMPTY_CATALOG: ToolCatalog = { tools: [], routes: new Map() };

/**
 * Merges upstream tool lists under collision-free names. When two tools want the same exposed
 * name, the server whose name sorts first keeps it and the other gets a hash suffix derived
 * from its server and tool name, so the outcome never depends on connection order.
 */
export function buildToolCatalog(upstreams: readonly UpstreamTools[]): ToolCatalog {
  const tools: Tool[] = [];
  const routes = new Map<string, ToolRoute>();
  for (const upstream of byServerName(upstreams)) {
    const visible = toolVisibility(upstream.filter);
    for (const tool of upstream.tools) {
      if (!visible(tool.name)) continue;
      const override = upstream.filter?.overrides?.[tool.name];
      const wanted = override?.name ? legalName(override.name) : exposedName(upstream.prefix, upstream.separator, tool.name);
      const name = claimName(wanted, `${upstream.server}\0${tool.name}`, routes);
      routes.set(name, { server: upstream.server, originalName: tool.name });
      const exposed: Tool = { ...tool, name };
      if (override?.title !== undefined) exposed.title = override.title;
      if (override?.description !== undefined) exposed.description = override.description;
      if (override?.annotations !== undefined) exposed.annotations = { ...tool.annotations, ...override.annotations };
      tools.push(exposed);
    }
  }
  return { tools, routes };
}

/** A predicate over an upstream's own tool names, from its allow/deny globs. */
export function toolVisibility(filter: ToolsFilter | undefined): (name: string) => boolean {
  const allow = filter?.allow?.length ? picomatch(filter.allow) : undefined;
  const deny = filter?.deny?.length ? picomatch(filter.deny) : undefined;
  return (name) => (allow === undefined || allow(name)) && (deny === undefined || !deny(name));
}

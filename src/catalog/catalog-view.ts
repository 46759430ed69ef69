import type { Prompt, Resource, ResourceTemplateType as ResourceTemplate, Tool } from '@modelcontextprotocol/client';
import type { PromptCatalog } from './prompt-catalog.js';
import { routeResourceUri, type ResourceCatalog } from './resource-catalog.js';
import { broadcastTool, MIN_BROADCAST_SERVERS, MIN_TAG_SERVERS, tagTool, type ServerTools } from './generated-tools.js';
import type { CatalogTool, ToolCatalog, ToolRoute } from './tool-catalog.js';

/** What a caller may see: `visible(server)` for prompts and resources, `visible(server, tool)` for a tool by its upstream name. */
export type Visibility = (server: string, tool?: string) => boolean;

/** The part of the catalogs one caller may see. Names are those of the full catalog, so they never differ between callers. */
export interface CatalogView {
  readonly tools: readonly Tool[];
  /** Every name this caller may see routed; broadcasts narrowed to the servers it may call. */
  readonly routes: ReadonlyMap<string, ToolRoute>;
  readonly upstreamTools: readonly CatalogTool[];
  readonly prompts: readonly Prompt[];
  readonly resources: readonly Resource[];
  readonly templates: readonly ResourceTemplate[];
}

/** The whole catalog as a view (callers with no restrictions). */
export function fullView(tools: ToolCatalog, prompts: PromptCatalog, resources: ResourceCatalog): CatalogView {
  return { tools: tools.tools, routes: tools.routes, upstreamTools: tools.upstreamTools, prompts: prompts.prompts, resources: resources.resources, templates: resources.templates };
}

/**
 * Filters the catalogs by `visible`. Broadcasts are narrowed to the servers on which the
 * caller may call (`callable`), and remade from those alone, so that their schemas,
 * descriptions and enums name nothing else. One left with fewer such servers than the full
 * catalog makes it for (two for `broadcast__<tool>`) is dropped: kept over a single server,
 * it would tell the caller that a server it cannot call offers the same tool. Names stay
 * those of the full catalog. Pure; callers cache the result per set of rights.
 */
export function restrictedView(
  tools: ToolCatalog,
  prompts: PromptCatalog,
  resources: ResourceCatalog,
  visible: Visibility,
  callable: Visibility = visible,
): CatalogView {
  const sources = new Map(tools.sources.map((s) => [s.server, s]));
  const callableOn = callableTools(sources, callable);
  const routes = new Map<string, ToolRoute>();
  for (const [name, route] of tools.routes) {
    const narrowed = narrow(route, visible, callableOn);
    if (narrowed) routes.set(name, narrowed);
  }
  const listed: Tool[] = [];
  for (const tool of tools.tools) {
    const route = routes.get(tool.name);
    if (route) listed.push(route.kind === 'broadcast' || route.kind === 'tag' ? { ...remade(route, sources, callableOn), name: tool.name } : tool);
  }
  return {
    tools: listed,
    routes,
    upstreamTools: tools.upstreamTools.filter((t) => routes.has(t.tool.name)),
    prompts: prompts.prompts.filter((p) => {
      const route = prompts.routes.get(p.name);
      return route !== undefined && visible(route.server);
    }),
    resources: resources.resources.filter((r) => {
      const route = routeResourceUri(resources, r.uri);
      return route !== undefined && visible(route.server);
    }),
    templates: resources.templates.filter((t) => {
      const route = resources.templateRoutes.get(t.uriTemplate);
      return route !== undefined && visible(route.server);
    }),
  };
}

/** A server's tools (as the generated tools know them) that the caller may call. */
type CallableTools = (server: string) => readonly Tool[];

function callableTools(sources: ReadonlyMap<string, ServerTools>, callable: Visibility): CallableTools {
  const cache = new Map<string, readonly Tool[]>();
  return (server) => {
    let tools = cache.get(server);
    if (!tools) cache.set(server, (tools = (sources.get(server)?.tools ?? []).filter((t) => callable(server, t.name))));
    return tools;
  };
}

function narrow(route: ToolRoute, visible: Visibility, callableOn: CallableTools): ToolRoute | undefined {
  switch (route.kind) {
    case 'upstream':
      return visible(route.server, route.originalName) ? route : undefined;
    case 'broadcast': {
      const servers = route.servers.filter((s) => callableOn(s).some((t) => t.name === route.tool));
      return servers.length >= MIN_BROADCAST_SERVERS ? { ...route, servers } : undefined;
    }
    case 'tag': {
      const servers = route.servers.filter((s) => callableOn(s).length > 0);
      return servers.length >= MIN_TAG_SERVERS ? { ...route, servers } : undefined;
    }
    case 'search':
    case 'call':
      return route;
  }
}

/** A narrowed broadcast or tag tool, made from the servers and tools left in its route. */
function remade(route: Extract<ToolRoute, { kind: 'broadcast' | 'tag' }>, sources: ReadonlyMap<string, ServerTools>, callableOn: CallableTools): Tool {
  if (route.kind === 'broadcast') {
    const offers = route.servers.flatMap((server) => {
      const source = sources.get(server);
      const tool = source?.tools.find((t) => t.name === route.tool);
      return source && tool ? [{ server, tags: source.tags, tool }] : [];
    });
    return broadcastTool(route.tool, offers);
  }
  return tagTool(
    route.tag,
    route.servers.map((server) => ({ server, tags: sources.get(server)?.tags ?? [], tools: callableOn(server) })),
  );
}

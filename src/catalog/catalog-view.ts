import type { Prompt, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { PromptCatalog } from './prompt-catalog.js';
import { routeResourceUri, type ResourceCatalog } from './resource-catalog.js';
import type { CatalogTool, ToolCatalog, ToolRoute } from './tool-catalog.js';

/** What a caller may see: `visible(server)` for prompts and resources, `visible(server, tool)` for a tool by its upstream name. */
export type Visibility = (server: string, tool?: string) => boolean;

/** The part of the catalogs one caller may see. Names are those of the full catalog, so they never differ between callers. */
export interface CatalogView {
  readonly tools: readonly Tool[];
  /** Every name this caller may see routed; broadcasts narrowed to the servers it may see. */
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

/** Filters the catalogs by `visible`. Pure; callers cache the result per set of rights. */
export function restrictedView(tools: ToolCatalog, prompts: PromptCatalog, resources: ResourceCatalog, visible: Visibility): CatalogView {
  const routes = new Map<string, ToolRoute>();
  for (const [name, route] of tools.routes) {
    const narrowed = narrow(route, visible);
    if (narrowed) routes.set(name, narrowed);
  }
  return {
    tools: tools.tools.filter((t) => routes.has(t.name)),
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

function narrow(route: ToolRoute, visible: Visibility): ToolRoute | undefined {
  switch (route.kind) {
    case 'upstream':
      return visible(route.server, route.originalName) ? route : undefined;
    case 'broadcast': {
      const servers = route.servers.filter((s) => visible(s, route.tool));
      return servers.length > 0 ? { ...route, servers } : undefined;
    }
    case 'tag': {
      const servers = route.servers.filter((s) => visible(s));
      return servers.length > 0 ? { ...route, servers } : undefined;
    }
    case 'search':
    case 'call':
      return route;
  }
}

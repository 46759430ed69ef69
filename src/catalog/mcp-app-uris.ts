import type { Tool } from '@modelcontextprotocol/client';
import { gatewayUri, routeResourceUri, type ResourceCatalog } from './resource-catalog.js';

/*
 * An MCP App is a tool whose `_meta` names a `ui://` resource on the same server (the HTML a
 * host renders, `text/html;profile=mcp-app`). The names are those of
 * `@modelcontextprotocol/ext-apps`: `_meta.ui.resourceUri`, and the deprecated flat
 * `_meta["ui/resourceUri"]`, which its `registerAppTool` still writes beside the nested one.
 * The URI names a concrete resource, never a template (`registerAppResource` takes a URI), but
 * a server may serve it through a template or leave it out of `resources/list`.
 */
const UI_SCHEME = 'ui://';
const LEGACY_RESOURCE_URI_KEY = 'ui/resourceUri';

/**
 * The URI under which a client reads `server`'s resource `uri` through the gateway: `uri`
 * itself when it already leads there, else the gateway form, which always does. A URI that
 * no server offers (not listed, no template matches) is left as it is: there is nothing to
 * point at, and a single fronted server stays transparent.
 */
export function appResourceUri(catalog: ResourceCatalog, server: string, uri: string): string {
  const route = routeResourceUri(catalog, uri);
  if (route?.server === server && route.originalUri === uri) return uri;
  // Another server claims the plain URI, or this one offers it only in the gateway form (shared);
  // the gateway form reaches this server whether or not it lists the resource.
  if (route !== undefined || offersInGatewayForm(catalog, server, uri)) return gatewayUri(server, uri);
  return uri;
}

/** Whether `server` lists `uri`, or has a template matching it, under the gateway form (because another server offers the same). */
function offersInGatewayForm(catalog: ResourceCatalog, server: string, uri: string): boolean {
  const rewritten = gatewayUri(server, uri);
  const listed = catalog.routes.get(rewritten);
  if (listed?.server === server && listed.originalUri === uri) return true;
  return catalog.matchers.some((m) => m.exposed && m.route.server === server && m.template.match(rewritten) !== null);
}

/**
 * `tool` with the `ui://` resource its `_meta` names rewritten by {@link appResourceUri}, in
 * both spellings. The same object when nothing changes, so tools without an app cost nothing.
 */
export function withAppResourceUris(tool: Tool, server: string, catalog: ResourceCatalog): Tool {
  const meta = tool._meta;
  if (!isRecord(meta)) return tool;
  const ui = meta.ui;
  const nested = isRecord(ui) ? ui.resourceUri : undefined;
  const legacy = meta[LEGACY_RESOURCE_URI_KEY];
  const nestedExposed = exposedUiUri(catalog, server, nested);
  const legacyExposed = exposedUiUri(catalog, server, legacy);
  if (nestedExposed === nested && legacyExposed === legacy) return tool;
  const rewritten: Record<string, unknown> = { ...meta };
  if (nestedExposed !== nested) rewritten.ui = { ...(ui as Record<string, unknown>), resourceUri: nestedExposed };
  if (legacyExposed !== legacy) rewritten[LEGACY_RESOURCE_URI_KEY] = legacyExposed;
  return { ...tool, _meta: rewritten };
}

/** Each upstream's tools with their app resource URIs rewritten; upstreams with none stay the same objects. */
export function offersWithAppResourceUris<T extends { server: string; tools: readonly Tool[] }>(upstreams: readonly T[], catalog: ResourceCatalog): T[] {
  return upstreams.map((upstream) => {
    let changed = false;
    const tools = upstream.tools.map((tool) => {
      const exposed = withAppResourceUris(tool, upstream.server, catalog);
      if (exposed !== tool) changed = true;
      return exposed;
    });
    return changed ? { ...upstream, tools } : upstream;
  });
}

function exposedUiUri(catalog: ResourceCatalog, server: string, value: unknown): unknown {
  return typeof value === 'string' && value.startsWith(UI_SCHEME) ? appResourceUri(catalog, server, value) : value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

import { UriTemplate, type Resource, type ResourceTemplateType as ResourceTemplate } from '@modelcontextprotocol/client';
import { byServerName } from './naming.js';

export interface UpstreamResources {
  server: string;
  resources: readonly Resource[];
  templates: readonly ResourceTemplate[];
}

export interface ResourceRoute {
  server: string;
  /** The URI (or URI template) as the upstream knows it. */
  originalUri: string;
}

export interface ResourceCatalog {
  readonly resources: readonly Resource[];
  readonly templates: readonly ResourceTemplate[];
  /** Exposed URI → owner, for listed resources. */
  readonly routes: ReadonlyMap<string, ResourceRoute>;
  /** Exposed URI template → owner. */
  readonly templateRoutes: ReadonlyMap<string, ResourceRoute>;
  /** Templates in match order, for URIs that are not listed. */
  readonly matchers: readonly { template: UriTemplate; route: ResourceRoute; exposed: boolean }[];
}

export const EMPTY_RESOURCES: ResourceCatalog = { resources: [], templates: [], routes: new Map(), templateRoutes: new Map(), matchers: [] };

/** The reversible gateway form of a URI that more than one upstream uses. */
const GATEWAY_SCHEME = 'conflux://';

export function gatewayUri(server: string, uri: string): string {
  return `${GATEWAY_SCHEME}${server}/${uri}`;
}

/** `{server, originalUri}` for a gateway-form URI, or undefined for any other URI. */
export function parseGatewayUri(uri: string): ResourceRoute | undefined {
  if (!uri.startsWith(GATEWAY_SCHEME)) return undefined;
  const rest = uri.slice(GATEWAY_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  return { server: rest.slice(0, slash), originalUri: rest.slice(slash + 1) };
}

/**
 * Merges resources and templates. A URI (or template) offered by one upstream keeps its form,
 * so a single fronted server stays transparent; one offered by several is rewritten for each
 * to `conflux://<server>/<original>`, which maps back without a lookup table.
 */
export function buildResourceCatalog(upstreams: readonly UpstreamResources[]): ResourceCatalog {
  const ordered = byServerName(upstreams);
  const uriOwners = countOwners(ordered.flatMap((u) => u.resources.map((r) => [u.server, r.uri] as const)));
  const templateOwners = countOwners(ordered.flatMap((u) => u.templates.map((t) => [u.server, t.uriTemplate] as const)));

  const resources: Resource[] = [];
  const templates: ResourceTemplate[] = [];
  const routes = new Map<string, ResourceRoute>();
  const templateRoutes = new Map<string, ResourceRoute>();
  const matchers: ResourceCatalog['matchers'][number][] = [];
  for (const upstream of ordered) {
    for (const resource of upstream.resources) {
      const uri = uriOwners.get(resource.uri)! > 1 ? gatewayUri(upstream.server, resource.uri) : resource.uri;
      if (routes.has(uri)) continue;
      routes.set(uri, { server: upstream.server, originalUri: resource.uri });
      resources.push(uri === resource.uri ? resource : { ...resource, uri });
    }
    for (const template of upstream.templates) {
      const shared = templateOwners.get(template.uriTemplate)! > 1;
      const uriTemplate = shared ? gatewayUri(upstream.server, template.uriTemplate) : template.uriTemplate;
      if (templateRoutes.has(uriTemplate)) continue;
      const route = { server: upstream.server, originalUri: template.uriTemplate };
      templateRoutes.set(uriTemplate, route);
      templates.push(shared ? { ...template, uriTemplate } : template);
      const matcher = safeTemplate(uriTemplate);
      if (matcher) matchers.push({ template: matcher, route, exposed: shared });
    }
  }
  return { resources, templates, routes, templateRoutes, matchers };
}

/**
 * Where a URI from a client leads: a listed resource, the gateway form, or the first
 * template (by server name) that matches it.
 */
export function routeResourceUri(catalog: ResourceCatalog, uri: string): ResourceRoute | undefined {
  const listed = catalog.routes.get(uri);
  if (listed) return listed;
  const rewritten = parseGatewayUri(uri);
  if (rewritten) return rewritten;
  for (const { template, route } of catalog.matchers) {
    if (template.match(uri) !== null) return { server: route.server, originalUri: uri };
  }
  return undefined;
}

/** The URI a client sees for an upstream's URI (for notifications coming back). */
export function exposedResourceUri(catalog: ResourceCatalog, server: string, originalUri: string): string {
  const direct = catalog.routes.get(originalUri);
  if (direct && direct.server === server) return originalUri;
  if (direct) return gatewayUri(server, originalUri);
  const rewritten = gatewayUri(server, originalUri);
  return catalog.routes.has(rewritten) ? rewritten : originalUri;
}

function countOwners(pairs: readonly (readonly [string, string])[]): Map<string, number> {
  const owners = new Map<string, Set<string>>();
  for (const [server, uri] of pairs) {
    let set = owners.get(uri);
    if (!set) owners.set(uri, (set = new Set()));
    set.add(server);
  }
  return new Map([...owners].map(([uri, set]) => [uri, set.size]));
}

function safeTemplate(text: string): UriTemplate | undefined {
  try {
    return new UriTemplate(text);
  } catch {
    return undefined;
  }
}

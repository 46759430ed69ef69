import { Server, type CacheHint, type ServerCapabilities } from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';
import type { Upstream } from '../upstream/upstream.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import { registerHandlers, type Era, type McpHandlerDeps } from './mcp-handlers.js';
import { sessionInstructions, upstreamInstructions } from './session-instructions.js';

export type SessionServerDeps = McpHandlerDeps;

/**
 * What 2026-07-28 clients may cache of the gateway's answers: nothing beyond the request, and
 * only for themselves. The lists and `server/discover` are a view for one caller (their
 * access decides what is in them, and the instructions name the servers it may read), and the
 * catalog changes whenever an upstream's lists or state do, announced on listen streams but
 * with no bound on when. Any lifetime above zero would let a client keep a list the gateway
 * already changed; `private` keeps a shared cache from serving one caller's view to another.
 * A resource read keeps the lifetime its upstream gave (see the handler), still private.
 */
const PER_CALLER_UNCACHED: CacheHint = { ttlMs: 0, cacheScope: 'private' };
const CACHE_HINTS = {
  'server/discover': PER_CALLER_UNCACHED,
  'tools/list': PER_CALLER_UNCACHED,
  'prompts/list': PER_CALLER_UNCACHED,
  'resources/list': PER_CALLER_UNCACHED,
  'resources/templates/list': PER_CALLER_UNCACHED,
  'resources/read': PER_CALLER_UNCACHED,
} as const;

/**
 * The MCP server one downstream 2025 session talks to. Handlers read shared, cached catalogs
 * and forward to upstreams; capabilities are those the upstreams offer (tools always). `owner`
 * is the access of the caller opening the session: its instructions carry those of the ready
 * upstreams it may read.
 */
export function createSessionServer(deps: SessionServerDeps, owner: Access): { server: Server; capabilities: ServerCapabilities } {
  return createServer(deps, owner, 'legacy');
}

/**
 * The MCP server for one 2026-07-28 request, built for the caller making it: the same
 * handlers, capabilities and instructions a session of that caller gets, less what the
 * revision dropped (`logging/setLevel`, resource subscriptions).
 */
export function createRequestServer(deps: SessionServerDeps, access: Access): Server {
  return createServer(deps, access, 'modern').server;
}

function createServer(deps: SessionServerDeps, access: Access, era: Era): { server: Server; capabilities: ServerCapabilities } {
  const upstreams = deps.upstreams.list();
  const capabilities = mergedCapabilities(upstreams, era);
  const server = new Server(
    { name: GATEWAY_NAME, version: GATEWAY_VERSION },
    { capabilities, instructions: sessionInstructions(upstreamInstructions(upstreams), access), ...(era === 'modern' ? { cacheHints: CACHE_HINTS } : {}) },
  );
  registerHandlers(server, deps, capabilities, era);
  return { server, capabilities };
}

/**
 * Tools always; prompts, resources, completions and logging when an upstream offers them, or
 * might (one not connected yet): an empty list costs nothing, a missing capability hides a
 * server that connects later. On 2026-07-28 resource updates are not offered: the gateway
 * subscribes upstreams per 2025 session only.
 */
export function mergedCapabilities(upstreams: readonly Upstream[], era: Era): ServerCapabilities {
  const live = upstreams.filter((u) => u.state !== 'disabled');
  const offers = (pick: (caps: NonNullable<Upstream['capabilities']>) => unknown) => live.some((u) => (u.capabilities ? pick(u.capabilities) : true));
  const capabilities: ServerCapabilities = { tools: { listChanged: true } };
  if (offers((c) => c.prompts)) capabilities.prompts = { listChanged: true };
  if (offers((c) => c.resources)) {
    capabilities.resources = { listChanged: true, subscribe: era === 'legacy' && offers((c) => c.resources?.subscribe) };
  }
  if (offers((c) => c.completions)) capabilities.completions = {};
  if (offers((c) => c.logging)) capabilities.logging = {};
  return capabilities;
}

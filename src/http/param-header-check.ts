import type { LiveCatalog } from '../catalog/live-catalog.js';
import type { Access } from '../auth/access-policy.js';
import { paramHeaders } from '../upstream/param-headers.js';
import { decodeHeaderValue } from '../upstream/standard-headers.js';

/**
 * SEP-2243 on the way in: a 2026-07-28 `tools/call` of a tool whose input schema marks an
 * argument with `x-mcp-header` must carry that argument in its `Mcp-Param-*` header too, and the
 * two must agree. Infrastructure in front of the gateway may route or authorise on the header
 * alone, so a call whose header and body disagree is refused (-32020) before it is served: what
 * was checked is what runs. The SDK checks this only for tools registered on its `McpServer`;
 * the gateway serves merged tools through the low-level `Server`, so it checks here.
 *
 * Returns the refusal's message, or undefined when the call may proceed (not a tool call, a
 * tool the caller cannot see, which the handler answers as unknown without naming its headers,
 * or headers that agree).
 */
export function paramHeaderMismatch(body: unknown, headers: Headers, catalog: Pick<LiveCatalog, 'upstreamToolsByName'>, access: Access): string | undefined {
  const call = toolCallOf(body);
  if (!call) return undefined;
  const entry = catalog.upstreamToolsByName.get(call.name);
  if (!entry || entry.route.kind !== 'upstream' || !access.visible(entry.route.server, entry.route.originalName)) return undefined;
  // What the caller sent is compared whatever its length; one too long to forward is refused
  // when the call is sent upstream (-32602, naming the argument).
  const expected = paramHeaders(entry.tool.inputSchema, call.arguments, { capped: false });
  for (const [name, value] of Object.entries(expected)) {
    const sent = headers.get(name);
    if (sent === null) return `${name} header is absent`;
    const decoded = decodeHeaderValue(sent);
    if (decoded === undefined) return `${name} header is malformed`;
    if (decoded !== decodeHeaderValue(value)) return `${name} header does not match the tools/call arguments`;
  }
  return undefined;
}

function toolCallOf(body: unknown): { name: string; arguments: Record<string, unknown> | undefined } | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { method, params } = body as { method?: unknown; params?: unknown };
  if (method !== 'tools/call' || params === null || typeof params !== 'object') return undefined;
  const { name, arguments: args } = params as { name?: unknown; arguments?: unknown };
  if (typeof name !== 'string') return undefined;
  return { name, arguments: args !== null && typeof args === 'object' ? (args as Record<string, unknown>) : undefined };
}

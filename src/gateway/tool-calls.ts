import { ErrorCode, McpError, type CallToolRequest, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import { RateLimitedError } from '../limits/errors.js';
import type { AuditLog } from '../observability/audit-log.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { inSpan } from '../observability/tracing.js';
import type { ToolRoute } from '../catalog/tool-catalog.js';
import { broadcast, type BroadcastDeps } from './broadcast.js';
import type { DownstreamCall } from './downstream-call.js';
import { AccessDeniedError } from '../auth/access-policy.js';
import { toolCallFailure, unknownTool } from './error-mapping.js';
import { forward } from './forward.js';

export interface ToolCallDeps extends BroadcastDeps {
  catalog: LiveCatalog;
  audit?: AuditLog | undefined;
  metrics?: GatewayMetrics | undefined;
  logger?: Logger | undefined;
}

export interface ToolCallOptions {
  /** `throw` rethrows upstream faults (for REST, which maps them to 502/504) instead of returning a tool error. */
  faults?: 'result' | 'throw';
}

const BroadcastArgs = z.looseObject({
  servers: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
});
const TagArgs = z.object({ tool: z.string().min(1), arguments: z.record(z.string(), z.unknown()).optional() });
const SearchArgs = z.object({ query: z.string().min(1), limit: z.number().int().min(1).max(50).optional() });
const CallArgs = z.object({ name: z.string().min(1), arguments: z.record(z.string(), z.unknown()).optional() });

/** Routes one `tools/call` by table lookup, to its upstream or a generated tool, and audits it. */
export async function callTool(
  deps: ToolCallDeps,
  params: CallToolRequest['params'],
  call: DownstreamCall,
  options: ToolCallOptions = {},
): Promise<CallToolResult> {
  const started = performance.now();
  const route = deps.catalog.viewFor(call.access).view.routes.get(params.name);
  const audit = (status: 'ok' | 'error' | 'denied', error?: string) => {
    const seconds = (performance.now() - started) / 1000;
    deps.metrics?.toolCall(params.name, status, seconds);
    if (deps.logger?.isLevelEnabled('debug')) {
      const server = route?.kind === 'upstream' ? route.server : undefined;
      deps.logger.debug({ requestId: call.requestId, session: call.sessionId, principal: call.principal, channel: call.channel, server, tool: params.name, status, error, durationMs: Math.round(seconds * 1000) }, 'tool call');
    }
    deps.audit?.record({
      kind: 'tool_call',
      principal: call.principal,
      sessionId: call.sessionId,
      channel: call.channel,
      server: route?.kind === 'upstream' ? route.server : undefined,
      target: params.name,
      arguments: params.arguments,
      status,
      error,
      durationMs: Math.round(performance.now() - started),
    });
  };
  return inSpan(`tools/call ${params.name}`, 'server', { 'mcp.tool': params.name, 'mcp.session': call.sessionId, 'enduser.id': call.principal }, async () => {
    try {
      const result = await dispatch(deps, route, params, call, options);
      audit(result.isError ? 'error' : 'ok', result.isError ? firstText(result) : undefined);
      return result;
    } catch (error) {
      audit(error instanceof AccessDeniedError ? 'denied' : 'error', error instanceof Error ? error.message : String(error));
      throw error;
    }
  });
}

async function dispatch(
  deps: ToolCallDeps,
  route: ToolRoute | undefined,
  params: CallToolRequest['params'],
  call: DownstreamCall,
  options: ToolCallOptions,
): Promise<CallToolResult> {
  if (!route) {
    // Named but outside the caller's view: refused as such, so the caller knows it is not a typo.
    if (deps.catalog.current.routes.has(params.name)) throw new AccessDeniedError(`Access denied: you may not use the tool "${params.name}"`);
    throw unknownTool(params.name);
  }
  const args = params.arguments ?? {};
  switch (route.kind) {
    case 'upstream':
      if (!deps.upstreams.get(route.server)) throw unknownTool(params.name);
      if (call.access.level(route.server, route.originalName) !== 'call') {
        throw new AccessDeniedError(`Access denied: you may list "${params.name}" but not call it`);
      }
      try {
        return (await forward(deps, route.server, 'tools/call', { ...params, name: route.originalName }, call)) as CallToolResult;
      } catch (error) {
        if (options.faults === 'throw' || error instanceof RateLimitedError) throw error;
        return toolCallFailure(error);
      }
    case 'broadcast':
      return broadcastTool(deps, route, parse(BroadcastArgs, args, params.name), call);
    case 'tag':
      return tagTool(deps, route, parse(TagArgs, args, params.name), call);
    case 'search':
      return searchTools(deps.catalog, parse(SearchArgs, args, params.name), call);
    case 'call': {
      const { name, arguments: targetArgs } = parse(CallArgs, args, params.name);
      if (deps.catalog.current.routes.get(name)?.kind === 'call') throw new McpError(ErrorCode.InvalidParams, `${params.name} cannot call itself`);
      return callTool(deps, { name, arguments: targetArgs ?? {} }, call, options);
    }
  }
}

async function broadcastTool(
  deps: ToolCallDeps,
  route: Extract<ToolRoute, { kind: 'broadcast' }>,
  args: z.infer<typeof BroadcastArgs>,
  call: DownstreamCall,
): Promise<CallToolResult> {
  const { servers: onlyServers, tags: onlyTags, ...toolArgs } = args;
  const targets = route.servers.filter(
    (server) =>
      (!onlyServers || onlyServers.includes(server)) &&
      (!onlyTags || onlyTags.some((tag) => deps.upstreams.get(server)?.config.tags.includes(tag))),
  );
  if (targets.length === 0) {
    return errorResult(`no server matches: "${route.tool}" is offered by ${route.servers.join(', ')}`);
  }
  return broadcast(deps, route.tool, callable(targets, route.tool, call), toolArgs, call);
}

async function tagTool(
  deps: ToolCallDeps,
  route: Extract<ToolRoute, { kind: 'tag' }>,
  args: z.infer<typeof TagArgs>,
  call: DownstreamCall,
): Promise<CallToolResult> {
  const offered = new Map<string, string[]>(route.servers.map((s) => [s, []]));
  for (const { route: r } of deps.catalog.current.upstreamTools) {
    if (r.kind === 'upstream') offered.get(r.server)?.push(r.originalName);
  }
  for (const [server, tools] of offered) offered.set(server, tools.filter((tool) => call.access.visible(server, tool)));
  const targets = route.servers.filter((server) => offered.get(server)!.includes(args.tool));
  if (targets.length === 0) {
    const listing = route.servers.map((s) => `${s}: ${offered.get(s)!.join(', ') || '(no tools)'}`).join('; ');
    return errorResult(`no server tagged "${route.tag}" offers "${args.tool}". Tagged servers and their tools: ${listing}`);
  }
  return broadcast(deps, args.tool, callable(targets, args.tool, call), args.arguments ?? {}, call);
}

/** The servers among `targets` on which the caller may call `tool`; refused when none. */
function callable(targets: readonly string[], tool: string, call: DownstreamCall): string[] {
  const allowed = targets.filter((server) => call.access.level(server, tool) === 'call');
  if (allowed.length === 0) throw new AccessDeniedError(`Access denied: you may not call "${tool}" on ${targets.join(', ')}`);
  return allowed;
}

function searchTools(catalog: LiveCatalog, args: z.infer<typeof SearchArgs>, call: DownstreamCall): CallToolResult {
  const { routes } = catalog.viewFor(call.access).view;
  const hits = catalog.searchIndex.search(args.query, args.limit ?? 10, call.access.unrestricted ? undefined : (name) => routes.has(name));
  const tools = hits.map(({ tool, score }) => ({
    name: tool.name,
    ...(tool.title ? { title: tool.title } : {}),
    description: tool.description ?? '',
    inputSchema: tool.inputSchema,
    score,
  }));
  return { content: [{ type: 'text', text: JSON.stringify({ tools }) }], structuredContent: { tools } };
}

function parse<T>(schema: z.ZodType<T>, args: unknown, tool: string): T {
  const result = schema.safeParse(args);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`).join('; ');
  throw new McpError(ErrorCode.InvalidParams, `Invalid arguments for ${tool}: ${problems}`);
}

function firstText(result: CallToolResult): string | undefined {
  const block = result.content?.find((c) => c.type === 'text');
  return block?.type === 'text' ? block.text.slice(0, 500) : undefined;
}

function errorResult(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}

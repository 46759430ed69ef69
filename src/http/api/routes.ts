import type { Context } from 'hono';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { LiveCatalog } from '../../catalog/live-catalog.js';
import { ServerNameSchema } from '../../config/schema.js';
import type { BroadcastDeps } from '../../gateway/broadcast.js';
import { detachedCall } from '../../gateway/forward.js';
import { broadcastTargets, callBroadcast, callTool, type ToolCallDeps } from '../../gateway/tool-calls.js';
import type { AuditLog } from '../../observability/audit-log.js';
import type { ServerRegistry } from '../../registry/server-registry.js';
import { publicServerView, redactDefinition } from '../../registry/server-view.js';
import type { AuditRepository } from '../../store/audit-repository.js';
import type { UpstreamPool } from '../../upstream/upstream-pool.js';
import { accessRoutes, type AccessRouteDeps } from './access-routes.js';
import { connectionRoutes, type ConnectionRouteDeps } from './connection-routes.js';
import { instanceRoutes, type InstanceRouteDeps } from './instance-routes.js';
import { sessionRoutes, type SessionRouteDeps } from './session-routes.js';
import { adminAction, callerOf, requireAdmin } from './admin-guard.js';
import { ApiError } from './api-errors.js';
import { AuditEventSchema, CallToolResult, ServerSchema, ToolSummarySchema, ToolWithRouteSchema } from './response-schemas.js';
import { route, type ApiRoute } from './route-table.js';

export interface ApiDeps extends ToolCallDeps, BroadcastDeps, AccessRouteDeps, ConnectionRouteDeps, InstanceRouteDeps, SessionRouteDeps {
  catalog: LiveCatalog;
  upstreams: UpstreamPool;
  registry: ServerRegistry;
  audit: AuditLog;
  auditRepository?: AuditRepository | undefined;
  logger: Logger;
}

const NameParam = z.object({ name: z.string().min(1) });
const ServerBody = z.looseObject({ name: ServerNameSchema });
const Arguments = z.record(z.string(), z.unknown());
const ToolsQuery = z.object({ server: z.string().optional(), tag: z.string().optional(), q: z.string().optional() });
const BroadcastBody = z.object({
  tool: z.string().min(1),
  arguments: Arguments.optional(),
  servers: z.array(z.string()).optional(),
  tags: z.array(z.string()).optional(),
});
const AuditQuery = z.object({
  principal: z.string().optional(),
  server: z.string().optional(),
  tool: z.string().optional(),
  kind: z.enum(['tool_call', 'prompt_get', 'resource_read', 'admin']).optional(),
  status: z.enum(['ok', 'error', 'denied']).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

/** The REST operations under `/api/v1`. */
export function apiRoutes(deps: ApiDeps): ApiRoute[] {
  const { registry, upstreams, catalog } = deps;

  /** A server as admins see it (secrets redacted), or as everyone else does (see `registry/server-view.ts`). */
  const serverView = (name: string, admin = true) => {
    const definition = registry.definition(name)!;
    const status = upstreams.get(name)?.status();
    const state = status?.state ?? (definition.enabled ? 'connecting' : 'disabled');
    const summary = { name, state, transport: definition.transport, description: definition.description, tags: definition.tags, toolCount: status?.toolCount ?? 0, perUser: status?.perUser, replicas: status?.replicas };
    if (!admin) return publicServerView(summary, definition);
    return {
      name,
      source: registry.sourceOf(name),
      state,
      transport: definition.transport,
      wire: status?.wire,
      description: definition.description,
      tags: definition.tags,
      enabled: definition.enabled,
      toolCount: summary.toolCount,
      ...(status?.perUser ? { perUser: true, instances: status.instances } : {}),
      ...(status?.replicas ? { replicas: status.replicas } : {}),
      lastError: status?.lastError,
      connectedAt: status?.connectedAt,
      definition: redactDefinition(definition),
    };
  };
  /** A server the caller may see; any other does not exist for it. */
  const admin = <T>(c: Context, action: string, args: unknown, run: () => Promise<T>) => adminAction(deps.audit, c, action, args, run);
  const known = (c: Context, name: string) => {
    if (!registry.sourceOf(name) || !callerOf(c).access.visible(name)) throw new ApiError(404, 'not_found', `no server named "${name}"`);
    return name;
  };

  return [
    route({
      method: 'get',
      path: '/servers',
      operationId: 'listServers',
      tag: 'servers',
      summary: 'List upstream servers with their state',
      returns: z.object({ servers: z.array(ServerSchema) }),
      responses: { 200: 'The servers' },
      handler: async ({ c }) => {
        const { access } = callerOf(c);
        return c.json({ servers: Object.keys(registry.all()).sort().filter((name) => access.visible(name)).map((name) => serverView(name, access.admin)) });
      },
    }),
    route({
      method: 'post',
      path: '/servers',
      operationId: 'createServer',
      tag: 'servers',
      summary: 'Register a server (stored in the database; connected at once)',
      body: ServerBody,
      returns: ServerSchema,
      responses: { 201: 'Registered', 400: 'Invalid definition', 409: 'The name is taken', 503: 'No database' },
      handler: async ({ body, c }) => {
        const { name, ...definition } = body;
        await admin(c, `servers.create:${name}`, body, () => registry.create(name, definition));
        return c.json(serverView(name), 201);
      },
    }),
    route({
      method: 'get',
      path: '/servers/:name',
      operationId: 'getServer',
      tag: 'servers',
      summary: 'One server',
      params: NameParam,
      returns: ServerSchema,
      responses: { 200: 'The server', 404: 'No such server' },
      handler: async ({ params, c }) => c.json(serverView(known(c, params.name), callerOf(c).access.admin)),
    }),
    route({
      method: 'put',
      path: '/servers/:name',
      operationId: 'replaceServer',
      tag: 'servers',
      summary: 'Replace a registered server',
      params: NameParam,
      body: z.looseObject({}),
      returns: ServerSchema,
      responses: { 200: 'Replaced', 400: 'Invalid definition', 404: 'No such server', 409: 'Defined in the config file' },
      handler: async ({ params, body, c }) => {
        await admin(c, `servers.replace:${params.name}`, body, () => registry.replace(params.name, body));
        return c.json(serverView(params.name));
      },
    }),
    route({
      method: 'patch',
      path: '/servers/:name',
      operationId: 'updateServer',
      tag: 'servers',
      summary: 'Change some fields of a registered server (e.g. {"enabled": false})',
      params: NameParam,
      body: z.looseObject({}),
      returns: ServerSchema,
      responses: { 200: 'Changed', 400: 'Invalid definition', 404: 'No such server', 409: 'Defined in the config file' },
      handler: async ({ params, body, c }) => {
        await admin(c, `servers.patch:${params.name}`, body, () => registry.patch(params.name, body));
        return c.json(serverView(params.name));
      },
    }),
    route({
      method: 'delete',
      path: '/servers/:name',
      operationId: 'deleteServer',
      tag: 'servers',
      summary: 'Remove a registered server',
      params: NameParam,
      responses: { 204: 'Removed', 404: 'No such server', 409: 'Defined in the config file' },
      handler: async ({ params, c }) => {
        await admin(c, `servers.delete:${params.name}`, undefined, () => registry.remove(params.name));
        return c.body(null, 204);
      },
    }),
    route({
      method: 'post',
      path: '/servers/:name/restart',
      operationId: 'restartServer',
      tag: 'servers',
      summary: 'Reconnect a server now (restarting its process)',
      params: NameParam,
      returns: ServerSchema,
      responses: { 202: 'Restarting', 404: 'No such server' },
      handler: async ({ params, c }) => {
        known(c, params.name);
        await admin(c, `servers.restart:${params.name}`, undefined, () => registry.restart(params.name));
        return c.json(serverView(params.name), 202);
      },
    }),
    route({
      method: 'get',
      path: '/tools',
      operationId: 'listTools',
      tag: 'tools',
      summary: 'List tools (filters: server, tag, q ranked search)',
      query: ToolsQuery,
      returns: z.object({ tools: z.array(ToolSummarySchema) }),
      responses: { 200: 'The tools' },
      handler: async ({ query, c }) => {
        const { access } = callerOf(c);
        const { view } = catalog.viewFor(access);
        const entries = query.q
          ? catalog.searchIndex
              .search(query.q, 1000, access.unrestricted ? undefined : (name) => view.routes.has(name))
              .map((hit) => view.upstreamTools.find((t) => t.tool.name === hit.name)!)
          : [...view.upstreamTools];
        const tools = entries
          .filter(({ route: r }) => r.kind === 'upstream')
          .filter(({ route: r }) => !query.server || (r.kind === 'upstream' && r.server === query.server))
          .filter(({ route: r }) => !query.tag || (r.kind === 'upstream' && registry.definition(r.server)?.tags.includes(query.tag)))
          .map(({ tool, route: r }) => ({
            name: tool.name,
            server: r.kind === 'upstream' ? r.server : undefined,
            originalName: r.kind === 'upstream' ? r.originalName : undefined,
            title: tool.title,
            description: tool.description,
          }));
        return c.json({ tools });
      },
    }),
    route({
      method: 'get',
      path: '/tools/:name',
      operationId: 'getTool',
      tag: 'tools',
      summary: 'One tool with its schemas',
      params: NameParam,
      returns: ToolWithRouteSchema,
      responses: { 200: 'The tool', 404: 'No such tool' },
      handler: async ({ params, c }) => {
        const { view } = catalog.viewFor(callerOf(c).access);
        const r = view.routes.get(params.name);
        const tool = view.upstreamTools.find((t) => t.tool.name === params.name)?.tool ?? view.tools.find((t) => t.name === params.name);
        if (!r || !tool) throw new ApiError(404, 'not_found', `no tool named "${params.name}"`);
        return c.json({ ...tool, route: r });
      },
    }),
    route({
      method: 'post',
      path: '/tools/:name/call',
      operationId: 'callTool',
      tag: 'tools',
      summary: 'Call a tool; the body is its arguments',
      params: NameParam,
      body: Arguments,
      returns: z.object({ result: CallToolResult, durationMs: z.number().int() }),
      responses: { 200: '{result, durationMs}', 400: 'Invalid arguments', 404: 'No such tool', 502: 'Upstream failed', 504: 'Upstream timed out' },
      handler: async ({ params, body, c }) => {
        if (!catalog.current.routes.has(params.name)) throw new ApiError(404, 'not_found', `no tool named "${params.name}"`);
        const started = performance.now();
        const result = await callTool(deps, { name: params.name, arguments: body }, detachedCall('rest', callerOf(c).access, c.req.raw.signal), { faults: 'throw' });
        return c.json({ result, durationMs: Math.round(performance.now() - started) });
      },
    }),
    route({
      method: 'post',
      path: '/broadcast',
      operationId: 'broadcast',
      tag: 'tools',
      summary: 'Run one tool (its own name) on every server that offers it, or on those named or tagged',
      body: BroadcastBody,
      returns: CallToolResult,
      responses: { 200: 'Every server\'s result, labelled', 404: 'No server offers the tool' },
      handler: async ({ body, c }) => {
        // The MCP broadcast's own path, so the call is audited and counted the same way.
        const call = detachedCall('rest', callerOf(c).access, c.req.raw.signal);
        if (broadcastTargets(deps, body, call).length === 0) throw new ApiError(404, 'not_found', `no matching server offers "${body.tool}"`);
        return c.json(await callBroadcast(deps, body, call));
      },
    }),
    route({
      method: 'get',
      path: '/audit',
      operationId: 'listAuditEvents',
      tag: 'audit',
      summary: 'Audit events, newest first (filters: principal, server, tool, kind, status, from, to; paging: limit, offset)',
      query: AuditQuery,
      returns: z.object({ total: z.number().int(), events: z.array(AuditEventSchema), limit: z.number().int(), offset: z.number().int() }),
      responses: { 200: '{total, events}', 503: 'No database' },
      handler: async ({ query, c }) => {
        requireAdmin(c);
        if (!deps.auditRepository) throw new ApiError(503, 'no_database', 'the audit trail needs a database');
        await deps.audit.flush();
        const page = await deps.auditRepository.query({
          principal: query.principal,
          server: query.server,
          target: query.tool,
          kind: query.kind,
          status: query.status,
          from: query.from ? new Date(query.from) : undefined,
          to: query.to ? new Date(query.to) : undefined,
          limit: query.limit,
          offset: query.offset,
        });
        return c.json({ ...page, limit: query.limit, offset: query.offset });
      },
    }),
    ...accessRoutes(deps),
    ...connectionRoutes(deps),
    ...instanceRoutes(deps),
    ...sessionRoutes(deps),
  ];
}

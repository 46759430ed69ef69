import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type ServerCapabilities,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import { AccessDeniedError, type Access } from '../auth/access-policy.js';
import { routeResourceUri, type ResourceRoute } from '../catalog/resource-catalog.js';
import type { UpstreamConnection } from '../upstream/upstream-connection.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError, failureText, invalidParams, resourceNotFound, unknownPrompt } from './error-mapping.js';
import { forward } from './forward.js';
import { pageOf } from './list-page.js';
import { upstreamLevel } from './log-levels.js';
import type { ResourceSubscriptions } from './resource-subscriptions.js';
import { inCallSlot, type SessionRegistry } from './session-registry.js';
import { sessionInstructions, upstreamInstructions } from './session-instructions.js';
import { callTool, type ToolCallDeps } from './tool-calls.js';
import { bestEffort } from '../observability/best-effort.js';
import { z } from 'zod';

export interface SessionServerDeps extends ToolCallDeps {
  sessions: SessionRegistry;
  subscriptions: ResourceSubscriptions;
  pageSize: number;
  maxConcurrentCallsPerSession: number;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * The MCP server one downstream session talks to. Handlers read shared, cached catalogs and
 * forward to upstreams; capabilities are those the upstreams offer (tools always). `owner` is
 * the access of the caller opening the session: its instructions carry those of the ready
 * upstreams it may read.
 */
export function createSessionServer(deps: SessionServerDeps, owner: Access): { server: Server; capabilities: ServerCapabilities } {
  const upstreams = deps.upstreams.list();
  const capabilities = mergedCapabilities(upstreams);
  const server = new Server({ name: GATEWAY_NAME, version: GATEWAY_VERSION }, { capabilities, instructions: sessionInstructions(upstreamInstructions(upstreams), owner) });
  /**
   * Registers a handler whose failures reach the client as `asMcpError` makes them (one
   * `MCP error <code>: ` prefix). The SDK is given a schema that checks the method alone: it
   * would answer params of the wrong type with -32603 and its validator's raw output, so they
   * are checked here and refused with -32602 naming each problem.
   */
  const on: Server['setRequestHandler'] = (schema, handler) => {
    const method = methodOf(schema);
    const checked = schema as unknown as z.ZodType;
    server.setRequestHandler(z.looseObject({ method: z.literal(method) }) as unknown as typeof schema, async (request, extra) => {
      const parsed = checked.safeParse(request);
      if (!parsed.success) throw invalidParams(method, parsed.error.issues);
      try {
        return await handler(parsed.data as typeof request, extra);
      } catch (error) {
        throw asMcpError(error, deps.logger);
      }
    });
  };
  const { catalog } = deps;
  const viewOf = (extra: Extra) => catalog.viewFor(accessOf(extra)).view;
  /** A prompt or resource the caller may not see does not exist for it. */
  const readable = <T extends { server: string }>(route: T | undefined, extra: Extra): T | undefined =>
    route && accessOf(extra).visible(route.server) ? route : undefined;
  const callOf = (extra: Extra): DownstreamCall => ({
    principal: accessOf(extra).principal.id,
    access: accessOf(extra),
    channel: 'mcp',
    sessionId: extra.sessionId,
    requestId: extra.requestId,
    clientCapabilities: server.getClientCapabilities(),
    signal: extra.signal,
    sendNotification: extra.sendNotification,
    sendRequest: extra.sendRequest,
  });
  /** Forwards a request; prompt gets and resource reads are audited like tool calls. */
  const relay = async (serverName: string, method: string, params: Record<string, unknown> | undefined, extra: Extra, audited?: { kind: 'prompt_get' | 'resource_read'; target: string }) => {
    const call = callOf(extra);
    const started = performance.now();
    const record = (status: 'ok' | 'error', error?: string) =>
      audited &&
      deps.audit?.record({
        kind: audited.kind,
        principal: call.principal,
        sessionId: call.sessionId,
        channel: call.channel,
        server: serverName,
        target: audited.target,
        arguments: audited.kind === 'prompt_get' ? params?.arguments : undefined,
        status,
        error,
        durationMs: Math.round(performance.now() - started),
      });
    try {
      const result = await forward(deps, serverName, method, params, call);
      record('ok');
      return result;
    } catch (error) {
      // The audit trail (read by admins) keeps the error's own text; the client's answer is mapped by `on`.
      record('error', failureText(error));
      throw error;
    }
  };

  on(ListToolsRequestSchema, (request, extra) => {
    const { items, nextCursor } = pageOf(viewOf(extra).tools, request.params?.cursor, deps.pageSize);
    return { tools: [...items], ...(nextCursor ? { nextCursor } : {}) };
  });
  on(CallToolRequestSchema, (request, extra) =>
    inCallSlot(deps.sessions.get(extra.sessionId), deps.maxConcurrentCallsPerSession, () => callTool(deps, request.params, callOf(extra))),
  );

  if (capabilities.prompts) {
    on(ListPromptsRequestSchema, (request, extra) => {
      const { items, nextCursor } = pageOf(viewOf(extra).prompts, request.params?.cursor, deps.pageSize);
      return { prompts: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on(GetPromptRequestSchema, async (request, extra) => {
      const route = readable(catalog.prompts.routes.get(request.params.name), extra);
      if (!route) throw unknownPrompt(request.params.name);
      return relay(route.server, 'prompts/get', { ...request.params, name: route.originalName }, extra, {
        kind: 'prompt_get',
        target: request.params.name,
      }) as never;
    });
  }

  if (capabilities.resources) {
    on(ListResourcesRequestSchema, (request, extra) => {
      const { items, nextCursor } = pageOf(viewOf(extra).resources, request.params?.cursor, deps.pageSize);
      return { resources: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on(ListResourceTemplatesRequestSchema, (request, extra) => {
      const { items, nextCursor } = pageOf(viewOf(extra).templates, request.params?.cursor, deps.pageSize);
      return { resourceTemplates: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on(ReadResourceRequestSchema, async (request, extra) => {
      const { uri } = request.params;
      const route = readable(routeResourceUri(catalog.resources, uri), extra);
      if (!route || !deps.upstreams.get(route.server)) throw resourceNotFound(uri);
      const result = (await relay(route.server, 'resources/read', { ...request.params, uri: route.originalUri }, extra, {
        kind: 'resource_read',
        target: uri,
      })) as {
        contents?: { uri: string }[];
      };
      // Contents name the URI the upstream knows; the client asked for the exposed one.
      if (route.originalUri !== uri && Array.isArray(result.contents)) {
        result.contents = result.contents.map((c) => (c.uri === route.originalUri ? { ...c, uri } : c));
      }
      return result as never;
    });
    if (capabilities.resources.subscribe) {
      on(SubscribeRequestSchema, async (request, extra) => {
        const session = deps.sessions.get(extra.sessionId);
        const route = readable(routeResourceUri(catalog.resources, request.params.uri), extra);
        if (!route || !deps.upstreams.get(route.server)) throw resourceNotFound(request.params.uri);
        if (session) await deps.subscriptions.subscribe(session, request.params.uri, route);
        return {};
      });
      on(UnsubscribeRequestSchema, async (request, extra) => {
        const session = deps.sessions.get(extra.sessionId);
        if (session) await deps.subscriptions.unsubscribe(session, request.params.uri);
        return {};
      });
    }
  }

  if (capabilities.completions) {
    on(CompleteRequestSchema, async (request, extra) => {
      const { ref } = request.params;
      if (ref.type === 'ref/prompt') {
        const route = readable(catalog.prompts.routes.get(ref.name), extra);
        if (!route) throw unknownPrompt(ref.name);
        return relay(route.server, 'completion/complete', { ...request.params, ref: { ...ref, name: route.originalName } }, extra) as never;
      }
      const route = readable<ResourceRoute>(catalog.resources.templateRoutes.get(ref.uri) ?? routeResourceUri(catalog.resources, ref.uri), extra);
      if (!route) throw resourceNotFound(ref.uri);
      return relay(route.server, 'completion/complete', { ...request.params, ref: { ...ref, uri: route.originalUri } }, extra) as never;
    });
  }

  if (capabilities.logging) {
    on(SetLevelRequestSchema, async (request, extra) => {
      const session = deps.sessions.get(extra.sessionId);
      if (session) session.logLevel = request.params.level;
      // Upstream connections are shared: each logs at the most verbose level among the sessions
      // that may read it. A caller changes only the servers it may read, so a principal
      // without grants cannot make any upstream more talkative.
      const access = accessOf(extra);
      const sessions = [...deps.sessions.all()];
      await Promise.all(
        deps.upstreams
          .list()
          .filter((u) => u.state === 'ready' && u.capabilities?.logging && access.visible(u.name))
          .map((u) => {
            const level = upstreamLevel(sessions.filter((s) => deps.sessions.accessOf(s).visible(u.name))) ?? request.params.level;
            return bestEffort(() => u.request('logging/setLevel', { level }), deps.logger.child({ server: u.name }), `set the upstream log level to ${level}`);
          }),
      );
      return {};
    });
  }
  return { server, capabilities };
}

/** The method literal of one of the SDK's request schemas. */
function methodOf(schema: unknown): string {
  const method = (schema as { shape?: { method?: { value?: unknown } } }).shape?.method?.value;
  if (typeof method !== 'string') throw new Error('a request schema without a method literal');
  return method;
}

/**
 * The caller's rights for this request, put there by the HTTP layer after authenticating it.
 * Without them nothing is allowed.
 */
function accessOf(extra: Extra): Access {
  const access = extra.authInfo?.extra?.access as Access | undefined;
  if (!access) throw new AccessDeniedError('Access denied: the request carries no authenticated caller');
  return access;
}

/**
 * Tools always; prompts, resources, completions and logging when an upstream offers them, or
 * might (one not connected yet): an empty list costs nothing, a missing capability hides a
 * server that connects later.
 */
export function mergedCapabilities(upstreams: readonly UpstreamConnection[]): ServerCapabilities {
  const live = upstreams.filter((u) => u.state !== 'disabled');
  const offers = (pick: (caps: ServerCapabilities) => unknown) => live.some((u) => (u.capabilities ? pick(u.capabilities) : true));
  const capabilities: ServerCapabilities = { tools: { listChanged: true } };
  if (offers((c) => c.prompts)) capabilities.prompts = { listChanged: true };
  if (offers((c) => c.resources)) {
    capabilities.resources = { listChanged: true, subscribe: offers((c) => c.resources?.subscribe) };
  }
  if (offers((c) => c.completions)) capabilities.completions = {};
  if (offers((c) => c.logging)) capabilities.logging = {};
  return capabilities;
}

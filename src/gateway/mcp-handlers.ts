import {
  isInputRequiredResult,
  type AuthInfo,
  type InputRequiredResult,
  type LoggingLevel,
  type Notification,
  type Result,
  type Server,
  type ServerCapabilities,
  type ServerContext,
  type Tool,
} from '@modelcontextprotocol/server';
import { AccessDeniedError, type Access } from '../auth/access-policy.js';
import { routeResourceUri, type ResourceRoute } from '../catalog/resource-catalog.js';
import { bestEffort } from '../observability/best-effort.js';
import { isPerUser } from '../upstream/auth/upstream-auth.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError, failureText, resourceNotFound, unknownPrompt } from './error-mapping.js';
import { forward } from './forward.js';
import type { ModernCallBridge } from './modern-call-bridge.js';
import { pageOf } from './list-page.js';
import { thresholdOf, upstreamLevel } from './log-levels.js';
import { checkedRequest, UNCHECKED, type ServedMethod, type ServedRequest } from './request-params.js';
import type { ResourceSubscriptions } from './resource-subscriptions.js';
import { inCallSlot, type SessionRegistry } from './session-registry.js';
import { registerTaskHandlers, tasksOffered } from './task-relay.js';
import { callTool, type ToolCallDeps } from './tool-calls.js';
import { handoverIn } from './call-handover.js';
import { sessionlessCall } from './sessionless-call.js';

export interface McpHandlerDeps extends ToolCallDeps {
  sessions: SessionRegistry;
  subscriptions: ResourceSubscriptions;
  pageSize: number;
  maxConcurrentCallsPerSession: number;
  /** How a 2026-07-28 call reaches its client when a 2025 upstream asks it something mid-call. */
  inputRounds: ModernCallBridge;
}

/**
 * The protocol era a server instance serves: `legacy` is a 2025 session (initialize, a session
 * id, server-to-client requests), `modern` one 2026-07-28 request (no session; the client is
 * asked for input through `input_required` results, and logs only when the request asks).
 */
export type Era = 'legacy' | 'modern';

/**
 * Registers the gateway's MCP handlers on `server`, for the methods `capabilities` advertise.
 * The same handlers serve both eras; what differs is how a call reaches back to its client
 * (`callOf`) and what 2026-07-28 results say about caching.
 */
export function registerHandlers(server: Server, deps: McpHandlerDeps, capabilities: ServerCapabilities, era: Era): void {
  /**
   * Registers a handler whose failures reach the client as `asMcpError` makes them. The SDK is
   * given params it does not check (its check of a spec method answers -32603 with its
   * validator's output); `checkedRequest` refuses them with -32602 naming each problem.
   */
  const on = <M extends ServedMethod>(method: M, handler: (request: ServedRequest<M>, ctx: ServerContext) => Promise<Result> | Result) => {
    server.setRequestHandler(method, { params: UNCHECKED }, async (params, ctx) => {
      const request = checkedRequest(method, params);
      try {
        return await handler(request, ctx);
      } catch (error) {
        throw asMcpError(error, deps.logger);
      }
    });
  };
  const { catalog } = deps;
  const viewOf = (ctx: ServerContext) => catalog.viewFor(accessOf(ctx)).view;
  /** A prompt or resource the caller may not see does not exist for it. */
  const readable = <T extends { server: string }>(route: T | undefined, ctx: ServerContext): T | undefined =>
    route && accessOf(ctx).visible(route.server) ? route : undefined;
  const sessionLevel = (ctx: ServerContext) => thresholdOf(deps.sessions.get(ctx.sessionId)?.logLevel);
  const callOf = (ctx: ServerContext): DownstreamCall => (era === 'legacy' ? sessionCall(server, ctx, sessionLevel(ctx)) : requestCall(ctx));
  /**
   * Runs `work` for a request that may need the client's input mid-call (`tools/call`,
   * `prompts/get`, `resources/read`): on a 2025 session the client is asked on its stream; on
   * 2026-07-28 through `input_required` rounds, `target` naming what a retry must name again.
   */
  const withClient = <T extends Result>(ctx: ServerContext, target: string, work: (call: DownstreamCall) => Promise<T>): Promise<T | InputRequiredResult> =>
    era === 'legacy' ? work(sessionCall(server, ctx, sessionLevel(ctx))) : deps.inputRounds.serve(ctx, { target, caller: rateKeyOf(ctx) }, requestCall(ctx), work);
  /**
   * A 2026-07-28 caller's prompt get or resource read takes one of its call slots for as long
   * as its work runs (paused rounds included), as its tool calls do: without them one caller
   * could hold any number of upstream requests open. A 2025 session's are bounded by its own
   * requests in flight.
   */
  const inSlot = <T>(ctx: ServerContext, work: () => Promise<T>): Promise<T> =>
    era === 'legacy' ? work() : deps.sessions.inCallerSlot(rateKeyOf(ctx), deps.maxConcurrentCallsPerSession, work);
  /** Forwards a request; prompt gets and resource reads are audited like tool calls. */
  const relay = async (
    serverName: string,
    method: string,
    params: Record<string, unknown>,
    ctx: ServerContext,
    call: DownstreamCall,
    audited?: { kind: 'prompt_get' | 'resource_read'; target: string },
  ) => {
    const started = performance.now();
    const record = (status: 'ok' | 'error', error?: string) =>
      audited &&
      deps.audit.record({
        kind: audited.kind,
        principal: call.principal,
        sessionId: call.sessionId,
        channel: call.channel,
        server: serverName,
        target: audited.target,
        arguments: audited.kind === 'prompt_get' ? params.arguments : undefined,
        status,
        error,
        durationMs: Math.round(performance.now() - started),
      });
    try {
      const result = await forward(deps, serverName, method, { ...params, ...retryParams(ctx) }, call);
      record('ok');
      return result;
    } catch (error) {
      // The audit trail (read by admins) keeps the error's own text; the client's answer is mapped by `on`.
      record('error', failureText(error));
      throw error;
    }
  };

  on('tools/list', (request, ctx) => {
    const { items, nextCursor } = pageOf(viewOf(ctx).tools, request.params?.cursor, deps.pageSize);
    return { tools: [...items], ...(nextCursor ? { nextCursor } : {}) };
  });
  on('tools/call', async (request, ctx) => {
    // A 2026-07-28 call the sessionless fast path ran and handed over for this server to answer (see call-handover.ts).
    const handedOver = era === 'modern' ? handoverIn(ctx.http?.authInfo) : undefined;
    const result = await (handedOver?.(requestCall(ctx)) ?? withClient(ctx, request.params.name, (call) =>
      // A 2025 session's calls take its slots; a 2026-07-28 caller's, without a session, the caller's own.
      era === 'legacy'
        ? inCallSlot(deps.sessions.get(ctx.sessionId), deps.maxConcurrentCallsPerSession, () => callTool(deps, { ...request.params, ...retryParams(ctx) }, call))
        : deps.sessions.inCallerSlot(rateKeyOf(ctx), deps.maxConcurrentCallsPerSession, () => callTool(deps, { ...request.params, ...retryParams(ctx) }, call)),
    ));
    if (isInputRequiredResult(result) || result.structuredContent === undefined) return result;
    // Structured content as the client's revision carries it (a 2025 client gets a non-object
    // value wrapped in an object; any client a text copy of it), as the SDK's own tools do.
    return server.projectCallToolResult(result, outputSchemaOf(viewOf(ctx).tools, request.params.name));
  });

  if (capabilities.prompts) {
    on('prompts/list', (request, ctx) => {
      const { items, nextCursor } = pageOf(viewOf(ctx).prompts, request.params?.cursor, deps.pageSize);
      return { prompts: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on('prompts/get', async (request, ctx) => {
      const route = readable(catalog.prompts.routes.get(request.params.name), ctx);
      if (!route) throw unknownPrompt(request.params.name);
      return withClient(ctx, request.params.name, (call) =>
        inSlot(ctx, () => relay(route.server, 'prompts/get', { ...request.params, name: route.originalName }, ctx, call, { kind: 'prompt_get', target: request.params.name })),
      );
    });
  }

  if (capabilities.resources) {
    on('resources/list', (request, ctx) => {
      const { items, nextCursor } = pageOf(viewOf(ctx).resources, request.params?.cursor, deps.pageSize);
      return { resources: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on('resources/templates/list', (request, ctx) => {
      const { items, nextCursor } = pageOf(viewOf(ctx).templates, request.params?.cursor, deps.pageSize);
      return { resourceTemplates: [...items], ...(nextCursor ? { nextCursor } : {}) };
    });
    on('resources/read', async (request, ctx) => {
      const { uri } = request.params;
      const route = readable(routeResourceUri(catalog.resources, uri), ctx);
      if (!route || !deps.upstreams.get(route.server)) throw resourceNotFound(uri);
      const result = (await withClient(ctx, uri, (call) =>
        inSlot(ctx, () => relay(route.server, 'resources/read', { ...request.params, uri: route.originalUri }, ctx, call, { kind: 'resource_read', target: uri })),
      )) as {
        contents?: { uri: string }[];
        resultType?: unknown;
      };
      // Contents name the URI the upstream knows; the client asked for the exposed one.
      if (route.originalUri !== uri && Array.isArray(result.contents)) {
        result.contents = result.contents.map((c) => (c.uri === route.originalUri ? { ...c, uri } : c));
      }
      // What this caller may read is decided per caller: no shared cache may keep it, whatever
      // the upstream (which knows one client, the gateway) allowed. Its freshness stands.
      return era === 'modern' && result.resultType !== 'input_required' ? { ...result, cacheScope: 'private' } : result;
    });
    if (era === 'legacy' && capabilities.resources.subscribe) {
      on('resources/subscribe', async (request, ctx) => {
        const session = deps.sessions.get(ctx.sessionId);
        const route = readable(routeResourceUri(catalog.resources, request.params.uri), ctx);
        if (!route || !deps.upstreams.get(route.server)) throw resourceNotFound(request.params.uri);
        if (session) {
          await deps.subscriptions.subscribe(session, request.params.uri, route);
          // Copies of the session on other replicas subscribe too: an update may reach any of them.
          await deps.sessions.recordSettings(session, { subscribed: request.params.uri }, ctx.http?.authInfo);
        }
        return {};
      });
      on('resources/unsubscribe', async (request, ctx) => {
        const session = deps.sessions.get(ctx.sessionId);
        if (session) {
          await deps.subscriptions.unsubscribe(session, request.params.uri);
          await deps.sessions.recordSettings(session, { unsubscribed: request.params.uri }, ctx.http?.authInfo);
        }
        return {};
      });
    }
  }

  // The Tasks extension is a 2026-07-28 one: a 2025 session is never handed a task.
  if (era === 'modern' && tasksOffered(deps.upstreams.list())) registerTaskHandlers(server, deps.tasks, callOf, deps.logger);

  if (capabilities.completions) {
    on('completion/complete', async (request, ctx) => {
      const { ref } = request.params;
      if (ref.type === 'ref/prompt') {
        const route = readable(catalog.prompts.routes.get(ref.name), ctx);
        if (!route) throw unknownPrompt(ref.name);
        return relay(route.server, 'completion/complete', { ...request.params, ref: { ...ref, name: route.originalName } }, ctx, callOf(ctx));
      }
      const route = readable<ResourceRoute>(catalog.resources.templateRoutes.get(ref.uri) ?? routeResourceUri(catalog.resources, ref.uri), ctx);
      if (!route) throw resourceNotFound(ref.uri);
      return relay(route.server, 'completion/complete', { ...request.params, ref: { ...ref, uri: route.originalUri } }, ctx, callOf(ctx));
    });
  }

  // 2026-07-28 has no logging/setLevel: each request names its level in its `_meta`.
  if (era === 'legacy' && capabilities.logging) {
    on('logging/setLevel', async (request, ctx) => {
      const session = deps.sessions.get(ctx.sessionId);
      if (session) session.logLevel = request.params.level;
      // Upstream connections are shared: each logs at the most verbose level among the sessions
      // that may read it. A caller changes only the servers it may read, so a principal
      // without grants cannot make any upstream more talkative.
      // A server that acts for each user: the caller's own instance (when it runs), at the level of the caller's sessions.
      const access = accessOf(ctx);
      const sessions = [...deps.sessions.all()];
      const user = access.principal.id;
      await Promise.all(
        deps.upstreams
          .list()
          .filter((u) => u.state === 'ready' && u.capabilities?.logging && access.visible(u.name))
          .flatMap((u) => {
            const perUser = isPerUser(u.config);
            const target = perUser ? deps.upstreams.running(u.name, user) : u;
            if (!target) return [];
            const readers = sessions.filter((s) => (!perUser || s.principal === user) && deps.sessions.accessOf(s).visible(u.name));
            const level = upstreamLevel(readers) ?? request.params.level;
            return [bestEffort(() => target.request('logging/setLevel', { level }), deps.logger.child({ server: u.name }), `set the upstream log level to ${level}`)];
          }),
      );
      // Copies of the session on other replicas take the level too.
      if (session) await deps.sessions.recordSettings(session, { logLevel: request.params.level }, ctx.http?.authInfo);
      return {};
    });
  }
}

/**
 * Whether a 2025 client reads `tools` exactly as they are listed: the SDK sends an output schema
 * whose root is not an object (which only 2026-07-28 allows) wrapped in one, so a list holding
 * such a tool cannot be served from the catalog's bytes.
 */
export function listedAsIs(tools: readonly Tool[]): boolean {
  return tools.every((tool) => tool.outputSchema === undefined || tool.outputSchema.type === 'object');
}

/** The output schema a tool advertises to the caller, if any. */
export function outputSchemaOf(tools: readonly Tool[], name: string): Tool['outputSchema'] {
  for (const tool of tools) if (tool.name === name) return tool.outputSchema;
  return undefined;
}

/**
 * The caller's rights, put in the request's `authInfo` by the HTTP layer after authenticating
 * it (the token itself stays there). Without them nothing is allowed.
 */
export function accessIn(authInfo: AuthInfo | undefined): Access {
  const access = authInfo?.extra?.access as Access | undefined;
  if (!access) throw new AccessDeniedError('Access denied: the request carries no authenticated caller');
  return access;
}

function accessOf(ctx: ServerContext): Access {
  return accessIn(ctx.http?.authInfo);
}

/** What per-caller limits count against: the rate key the HTTP layer put beside the caller's rights. */
function rateKeyOf(ctx: ServerContext): string {
  const rateKey = ctx.http?.authInfo?.extra?.rateKey;
  return typeof rateKey === 'string' ? rateKey : `principal:${accessOf(ctx).principal.id}`;
}

/** A request on a 2025 session: messages about it travel on its stream, requests to the client included. */
function sessionCall(server: Server, ctx: ServerContext, logLevel: LoggingLevel): DownstreamCall {
  const access = accessOf(ctx);
  return {
    principal: access.principal.id,
    access,
    channel: 'mcp',
    sessionId: ctx.sessionId,
    requestId: ctx.mcpReq.id,
    clientCapabilities: server.getClientCapabilities(),
    logLevel,
    signal: ctx.mcpReq.signal,
    sendNotification: (notification) => ctx.mcpReq.notify(notification as Notification),
    sendRequest: (request, options) => ctx.mcpReq.send(request, UNCHECKED, options),
  };
}

/** A 2026-07-28 request's call (see `sessionlessCall`): messages about it go out on the request's own answer. */
function requestCall(ctx: ServerContext): DownstreamCall {
  const request = { id: ctx.mcpReq.id, envelope: ctx.mcpReq.envelope as Record<string, unknown> | undefined, signal: ctx.mcpReq.signal };
  return sessionlessCall(accessOf(ctx), request, (notification) => ctx.mcpReq.notify(notification as Notification));
}

/**
 * The answers a retried request carries to an upstream's `input_required` result, forwarded
 * with it: the upstream that asked reads them (and its own `requestState`, unchanged). On a
 * 2025 session the SDK asks the client itself and fills these in as it retries the handler.
 */
function retryParams(ctx: ServerContext): { inputResponses?: Record<string, unknown>; requestState?: string } {
  const state = ctx.mcpReq.requestState();
  return {
    ...(ctx.mcpReq.inputResponses ? { inputResponses: ctx.mcpReq.inputResponses } : {}),
    ...(typeof state === 'string' ? { requestState: state } : {}),
  };
}

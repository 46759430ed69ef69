import { ProtocolErrorCode, type CallToolRequest, type CallToolResult } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import { LimitExceededError, RateLimitedError } from '../limits/errors.js';
import type { AuditLog } from '../observability/audit-log.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { inSpan } from '../observability/tracing.js';
import type { ToolRoute } from '../catalog/tool-catalog.js';
import { legalName } from '../catalog/naming.js';
import { broadcast, type BroadcastDeps, type BroadcastPart } from './broadcast.js';
import { isSessionlessMcp, type DownstreamCall } from './downstream-call.js';
import { AccessDeniedError } from '../auth/access-policy.js';
import { HiddenToolError, recordedTextOf, toolCallFailure, UnknownToolError, unknownTool, upstreamAuthErrorIn, upstreamAuthResult, WireMcpError } from './error-mapping.js';
import { forward } from './forward.js';
import type { TaskRelay } from './task-relay.js';
import { isTaskHandle, withoutLegacyTaskParam } from './task-wire.js';
import { AuthorizationRequiredError } from '../upstream/auth/authorization-required.js';
import type { UpstreamAuthError } from '../upstream/auth/upstream-auth.js';
import { bestEffort } from '../observability/best-effort.js';

/**
 * What every surface's tool calls run on (MCP sessions, the plain path, REST, the CLI): built
 * once by the composition root and passed whole. Nothing is optional, so no surface can leave
 * its calls unaudited or uncounted by forgetting a field.
 */
export interface ToolCallDeps extends BroadcastDeps {
  catalog: LiveCatalog;
  /** Task handles upstreams answer calls with (the Tasks extension), and the requests that follow them. */
  tasks: TaskRelay;
  /** Every call's row; with no database (or audit off) the rows go to the log. */
  audit: AuditLog;
  metrics: GatewayMetrics;
  logger: Logger;
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

/**
 * The `tool_id` of calls to a name the caller cannot see, hidden or unknown alike: `/metrics`
 * is public, so a caller-chosen name must neither show whether it exists nor take a label.
 * Not a legal tool name, so it never mixes with a real tool's series.
 */
export const UNROUTED_TOOL_LABEL = '(unknown)';

/** A call's answer, and whether it was refused before reaching any upstream (the audit log bounds how many of those it writes). */
interface Outcome {
  result: CallToolResult;
  refused: boolean;
}

/**
 * Arguments a generated tool cannot use (or a meta-tool asked to call itself): refused before
 * anything runs. Answered as any -32602 on every surface.
 */
class InvalidToolArgumentsError extends WireMcpError {
  constructor(message: string) {
    super(ProtocolErrorCode.InvalidParams, message);
  }
}

/** Routes one `tools/call` by table lookup, to its upstream or a generated tool, and audits it. */
export async function callTool(
  deps: ToolCallDeps,
  params: CallToolRequest['params'],
  call: DownstreamCall,
  options: ToolCallOptions = {},
): Promise<CallToolResult> {
  return (await routedCall(deps, params, call, options)).result;
}

async function routedCall(deps: ToolCallDeps, params: CallToolRequest['params'], call: DownstreamCall, options: ToolCallOptions): Promise<Outcome> {
  const route = deps.catalog.viewFor(call.access).view.routes.get(params.name);
  const server = route?.kind === 'upstream' ? route.server : undefined;
  // A name the caller cannot see reaches nothing: its failure is a refusal like a denied call.
  const names = { target: params.name, label: route ? params.name : UNROUTED_TOOL_LABEL };
  return audited(deps, names, params.arguments, server, call, () => dispatch(deps, route, params, call, options), route === undefined);
}

/** A broadcast asked for by the upstream name of its tool (the REST API's form). */
export interface BroadcastRequest {
  tool: string;
  arguments?: Record<string, unknown> | undefined;
  servers?: readonly string[] | undefined;
  tags?: readonly string[] | undefined;
}

/**
 * Runs `request.tool` on every server the caller may see that offers it (narrowed by
 * `servers` and `tags`), audited and counted exactly as the MCP tool `broadcast__<tool>`:
 * one row for the broadcast under that name, with the same arguments, and one per server.
 */
export async function callBroadcast(deps: ToolCallDeps, request: BroadcastRequest, call: DownstreamCall): Promise<CallToolResult> {
  const name = broadcastToolName(deps.catalog, request.tool);
  const filters = { servers: request.servers, tags: request.tags };
  const args = { ...request.arguments, ...(request.servers ? { servers: request.servers } : {}), ...(request.tags ? { tags: request.tags } : {}) };
  const offering = offeringServers(deps.catalog, request.tool, call);
  // With no server offering it, the name is the caller's invention (or hidden): not a metrics label.
  const names = { target: name, label: offering.length > 0 ? name : UNROUTED_TOOL_LABEL };
  return (await audited(deps, names, args, undefined, call, () => broadcastTo(deps, name, request.tool, offering, filters, request.arguments ?? {}, call))).result;
}

/** The servers a `BroadcastRequest` would reach before access levels are checked (none: nothing the caller may see offers it). */
export function broadcastTargets(deps: ToolCallDeps, request: BroadcastRequest, call: DownstreamCall): string[] {
  return narrowed(deps, offeringServers(deps.catalog, request.tool, call), request);
}

/**
 * Times one call, then counts, logs and audits it whatever its outcome. Refusals (access
 * denied, rate limited, no such tool, arguments a generated tool cannot use, a call through
 * `conflux__call_tool` that was itself refused) are marked so the audit log can bound how
 * many it writes. `names.target` is what the audit row and the log name, `names.label` the
 * metrics' `tool_id`.
 */
async function audited(
  deps: ToolCallDeps,
  names: { target: string; label: string },
  args: unknown,
  server: string | undefined,
  call: DownstreamCall,
  run: () => Promise<Outcome>,
  unrouted = false,
): Promise<Outcome> {
  const name = names.target;
  const started = performance.now();
  const done = (status: 'ok' | 'error' | 'denied', error: string | undefined, refused: boolean, counted: 'ok' | 'error' | 'denied' = status) => {
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.toolCall(names.label, counted, seconds);
    if (deps.logger.isLevelEnabled('debug')) {
      deps.logger.debug({ requestId: call.requestId, session: call.sessionId, principal: call.principal, channel: call.channel, server, tool: name, status, error, durationMs: Math.round(seconds * 1000) }, 'tool call');
    }
    deps.audit.record(
      { kind: 'tool_call', principal: call.principal, sessionId: call.sessionId, channel: call.channel, server, target: name, arguments: args, status, error, durationMs: Math.round(seconds * 1000) },
      { refused },
    );
  };
  return inSpan(`tools/call ${name}`, 'server', { 'mcp.tool': name, 'mcp.session': call.sessionId, 'enduser.id': call.principal }, async () => {
    let outcome: Outcome;
    try {
      outcome = await run();
    } catch (error) {
      const status = error instanceof AccessDeniedError ? 'denied' : 'error';
      // The audit row may say denied (admins read it); public metrics count a hidden tool exactly as an unknown one.
      done(status, error instanceof Error ? error.message : String(error), unrouted || isRefusal(error), error instanceof HiddenToolError ? 'error' : status);
      throw error;
    }
    const { result, refused } = outcome;
    done(result.isError ? 'error' : 'ok', result.isError ? (recordedTextOf(result) ?? firstText(result)) : undefined, refused);
    return outcome;
  });
}

/** A failure raised before any upstream was reached: by the caller's rights, a limit, a name or arguments nothing could run. */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof AccessDeniedError ||
    error instanceof RateLimitedError ||
    error instanceof LimitExceededError ||
    error instanceof UnknownToolError ||
    error instanceof InvalidToolArgumentsError
  );
}

async function dispatch(
  deps: ToolCallDeps,
  route: ToolRoute | undefined,
  params: CallToolRequest['params'],
  call: DownstreamCall,
  options: ToolCallOptions,
): Promise<Outcome> {
  if (!route) {
    // Named but outside the caller's view: audited as a refusal, answered as an unknown tool.
    if (deps.catalog.current.routes.has(params.name)) throw new HiddenToolError(params.name);
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
        const tasks = deps.tasks.offeredTo(call);
        const send = () => forward(deps, route.server, 'tools/call', { ...withoutLegacyTaskParam(params), name: route.originalName }, call, { tasks });
        const result = await withUserAuthorization(deps, route.server, call, send);
        if (tasks && isTaskHandle(result)) return { result: await deps.tasks.adopt(route.server, route.originalName, result, call), refused: false };
        return { result: result as CallToolResult, refused: false };
      } catch (error) {
        // The gateway's own credentials towards the upstream failed: a tool error on every surface, REST included.
        const authFailure = upstreamAuthErrorIn(error);
        if (authFailure) return { result: upstreamAuthResult(authFailure), refused: false };
        if (options.faults === 'throw' || error instanceof RateLimitedError) throw error;
        return { result: toolCallFailure(error, { speaks2026: isSessionlessMcp(call) }), refused: false };
      }
    case 'broadcast':
      return broadcastTool(deps, params.name, route, parse(BroadcastArgs, args, params.name), call);
    case 'tag':
      return tagTool(deps, params.name, route, parse(TagArgs, args, params.name), call);
    case 'search':
      return { result: searchTools(deps.catalog, parse(SearchArgs, args, params.name), call), refused: false };
    case 'call': {
      const { name, arguments: targetArgs } = parse(CallArgs, args, params.name);
      if (deps.catalog.current.routes.get(name)?.kind === 'call') throw new InvalidToolArgumentsError(`${params.name} cannot call itself`);
      // The inner call is audited on its own; this row is refused when that call was.
      return routedCall(deps, { name, arguments: targetArgs ?? {} }, call, options);
    }
  }
}

/**
 * Sends a call to a server that acts for each user. When the user has not authorised it yet, a
 * client that opens URLs for its user (URL-mode elicitation) is asked to show the authorization
 * URL; once it accepts, the call waits for the callback (at most the server's timeout) and is
 * sent once more. Otherwise (no such client, declined, not finished in time) the answer is a
 * tool error that tells the user to authorise, with the URL.
 */
async function withUserAuthorization(deps: ToolCallDeps, server: string, call: DownstreamCall, send: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  try {
    return await send();
  } catch (error) {
    const required = upstreamAuthErrorIn(error);
    if (required?.kind !== 'authorization-required' || !(await authorizedThroughClient(deps, server, required, call))) throw error;
  }
  // Once: a second refusal reaches the caller as the tool error with its URL.
  return send();
}

/**
 * Asks the client to open the authorization URL (elicitation `mode: url`) and waits for the user
 * to finish; true once they have. Both waits (the client's answer, then the callback) share one
 * deadline: the authorization's own lifetime (`authorizationTimeoutSeconds`), cut short by the call's signal.
 */
async function authorizedThroughClient(deps: ToolCallDeps, server: string, required: UpstreamAuthError, call: DownstreamCall): Promise<boolean> {
  if (!(required instanceof AuthorizationRequiredError) || call.clientCapabilities?.elicitation?.url === undefined) return false;
  // Whole milliseconds, at least one: AbortSignal.timeout takes an integer.
  const remaining = () => Math.max(1, Math.ceil(required.remainingMs() ?? (deps.upstreams.get(server)?.config.timeout ?? 60) * 1000));
  const deadline = AbortSignal.any([call.signal, AbortSignal.timeout(remaining())]);
  const { elicitationId } = required;
  let answer: Record<string, unknown>;
  try {
    answer = await call.sendRequest(
      { method: 'elicitation/create', params: { mode: 'url', elicitationId, url: required.authorizationUrl, message: `Authorise the gateway to act for you on "${server}".` } },
      { signal: deadline, timeout: remaining() },
    );
  } catch {
    // The client could not be asked after all (a 2026-07-28 request, a client that went away, the deadline): the URL goes in the answer.
    deps.logger.debug({ server }, 'the client could not be asked to open an authorization URL');
    return false;
  }
  if (answer.action !== 'accept') return false;
  const connected = await required.connected(remaining(), deadline);
  if (connected) void bestEffort(call.sendNotification({ method: 'notifications/elicitation/complete', params: { elicitationId } }), deps.logger, 'tell the client the authorization is complete');
  return connected;
}

async function broadcastTool(
  deps: ToolCallDeps,
  name: string,
  route: Extract<ToolRoute, { kind: 'broadcast' }>,
  args: z.infer<typeof BroadcastArgs>,
  call: DownstreamCall,
): Promise<Outcome> {
  const { servers, tags, ...toolArgs } = args;
  return broadcastTo(deps, name, route.tool, route.servers, { servers, tags }, toolArgs, call);
}

/**
 * Runs `tool` on those of `offering` that pass the filters and that the caller may call; each
 * server's call is audited under `name`. Refused when it reached no upstream: no server
 * matched, or every server's call was refused by its rate limit.
 */
async function broadcastTo(
  deps: ToolCallDeps,
  name: string,
  tool: string,
  offering: readonly string[],
  filters: Pick<BroadcastRequest, 'servers' | 'tags'>,
  toolArgs: Record<string, unknown>,
  call: DownstreamCall,
): Promise<Outcome> {
  const targets = narrowed(deps, offering, filters);
  if (targets.length === 0) {
    return { result: errorResult(`no server matches: "${tool}" is offered by ${offering.join(', ') || 'no server you may see'}`), refused: true };
  }
  return fannedOut(deps, tool, callable(targets, tool, call), toolArgs, call, auditPart(deps, name, toolArgs, call));
}

/** `broadcast()`, refused when none of its parts reached its upstream. */
async function fannedOut(
  deps: ToolCallDeps,
  tool: string,
  servers: readonly string[],
  toolArgs: Record<string, unknown>,
  call: DownstreamCall,
  onPart: (part: BroadcastPart) => void,
): Promise<Outcome> {
  let reached = 0;
  const result = await broadcast(deps, tool, servers, toolArgs, call, (part) => {
    if (!part.refused) reached++;
    onPart(part);
  });
  return { result, refused: reached === 0 };
}

function narrowed(deps: ToolCallDeps, offering: readonly string[], filters: Pick<BroadcastRequest, 'servers' | 'tags'>): string[] {
  return offering.filter(
    (server) =>
      (!filters.servers || filters.servers.includes(server)) &&
      (!filters.tags || filters.tags.some((tag) => deps.upstreams.get(server)?.config.tags.includes(tag))),
  );
}

/** The servers the caller may see that offer `tool` under its upstream name, sorted. */
function offeringServers(catalog: LiveCatalog, tool: string, call: DownstreamCall): string[] {
  const servers = new Set<string>();
  for (const { route } of catalog.viewFor(call.access).view.upstreamTools) {
    if (route.kind === 'upstream' && route.originalName === tool) servers.add(route.server);
  }
  return [...servers].sort();
}

/** The exposed name of the broadcast of `tool`, or the name it would have (one server offers it, or broadcasts are off). */
function broadcastToolName(catalog: LiveCatalog, tool: string): string {
  for (const [name, route] of catalog.current.routes) if (route.kind === 'broadcast' && route.tool === tool) return name;
  return legalName(`broadcast__${tool}`);
}

/** Audits each server's part of a broadcast: one row per upstream call, under the broadcast's name. */
function auditPart(deps: ToolCallDeps, name: string, toolArgs: Record<string, unknown>, call: DownstreamCall): (part: BroadcastPart) => void {
  return (part) =>
    deps.audit.record(
      {
        kind: 'tool_call',
        principal: call.principal,
        sessionId: call.sessionId,
        channel: call.channel,
        server: part.server,
        target: name,
        arguments: toolArgs,
        status: part.status,
        error: part.error,
        durationMs: part.durationMs,
      },
      { refused: part.refused },
    );
}

async function tagTool(
  deps: ToolCallDeps,
  name: string,
  route: Extract<ToolRoute, { kind: 'tag' }>,
  args: z.infer<typeof TagArgs>,
  call: DownstreamCall,
): Promise<Outcome> {
  const offered = new Map<string, string[]>(route.servers.map((s) => [s, []]));
  for (const { route: r } of deps.catalog.current.upstreamTools) {
    if (r.kind === 'upstream') offered.get(r.server)?.push(r.originalName);
  }
  for (const [server, tools] of offered) offered.set(server, tools.filter((tool) => call.access.visible(server, tool)));
  const targets = route.servers.filter((server) => offered.get(server)!.includes(args.tool));
  if (targets.length === 0) {
    const listing = route.servers.map((s) => `${s}: ${offered.get(s)!.join(', ') || '(no tools)'}`).join('; ');
    return { result: errorResult(`no server tagged "${route.tag}" offers "${args.tool}". Tagged servers and their tools: ${listing}`), refused: true };
  }
  return fannedOut(deps, args.tool, callable(targets, args.tool, call), args.arguments ?? {}, call, auditPart(deps, name, args.arguments ?? {}, call));
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
  throw new InvalidToolArgumentsError(`Invalid arguments for ${tool}: ${problems}`);
}

function firstText(result: CallToolResult): string | undefined {
  const block = result.content?.find((c) => c.type === 'text');
  return block?.type === 'text' ? block.text.slice(0, 500) : undefined;
}

function errorResult(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}

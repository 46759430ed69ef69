import { isInputRequiredResult, ProtocolErrorCode, specTypeSchemas, type CallToolResult, type JSONRPCNotification, type RequestId } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { Access } from '../auth/access-policy.js';
import { CallsInFlight } from './calls-in-flight.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError, invalidParams, sessionClosed, WireMcpError } from './error-mapping.js';
import { outputSchemaOf } from './mcp-handlers.js';
import { inCallSlot, type DownstreamSession } from './session-registry.js';
import { thresholdOf } from './log-levels.js';
import { callTool, type ToolCallDeps } from './tool-calls.js';

export interface PlainToolCallsOptions {
  maxConcurrentCallsPerSession: number;
}

/** A `tools/call` answered as JSON-RPC messages: the notifications sent about it, then its response. */
export interface PlainAnswer {
  messages: readonly object[];
}

/**
 * Answers the most common request, a `tools/call` that cannot need the client's help, without
 * the session's SDK server and its per-request web streams: routing, access checks, limits,
 * audit and the result check are the same as on the regular path.
 *
 * A call qualifies when it asks for no progress (no `_meta`), is not a task, and the client
 * declared none of sampling, elicitation or roots (so nothing can be asked of it mid-call).
 * Log messages the upstream sends about the call are kept and sent just before the answer, in
 * order. Cancellation works as usual: the client going away, or `notifications/cancelled`
 * naming the call's id. A call under an id already in flight in its session is refused (-32600).
 *
 * What is logged about a call on this path carries `path: "plain"`, so a log (and a test) tells
 * which path answered: a change that quietly sent every call down the regular path would show.
 */
export class PlainToolCalls {
  readonly #inFlight = new CallsInFlight<DownstreamSession>();
  readonly #deps: ToolCallDeps;
  readonly #maxConcurrentCallsPerSession: number;

  constructor(deps: ToolCallDeps, options: PlainToolCallsOptions) {
    this.#deps = { ...deps, logger: deps.logger.child({ path: 'plain' }) };
    this.#maxConcurrentCallsPerSession = options.maxConcurrentCallsPerSession;
  }

  /** Whether `message` may take this path in `session`; otherwise the regular path serves it. */
  qualifies(session: DownstreamSession, message: unknown): message is { id: RequestId; method: 'tools/call'; params: { name: string; arguments?: Record<string, unknown> } } {
    const params = toolsCall(message)?.params;
    if (params === null || typeof params !== 'object' || '_meta' in params || 'task' in params) return false;
    const client = session.server.getClientCapabilities();
    if (!client || client.sampling || client.elicitation || client.roots) return false;
    return plainParams(params);
  }

  /**
   * The answer to a `tools/call` whose params do not fit the schema: -32602 naming each
   * problem (the SDK would answer -32603 with its validator's raw output). The schema is only
   * consulted once the cheap shape check has failed.
   */
  malformed(session: DownstreamSession, message: unknown): PlainAnswer | undefined {
    const request = toolsCall(message);
    if (!request || !session.server.getClientCapabilities()) return undefined;
    // Name and arguments alone were checked by hand; anything more (`_meta`, `task`) is rare
    // and checked whole here, or the SDK would answer its validator's dump.
    if (plainParams(request.params) && onlyNameAndArguments(request.params)) return undefined;
    const { id } = request;
    const { issues } = specTypeSchemas.CallToolRequest['~standard'].validate(message);
    if (!issues) return undefined;
    return { messages: [{ jsonrpc: '2.0', id, error: errorBody(invalidParams('tools/call', issues), this.#deps.logger) }] };
  }

  async answer(
    session: DownstreamSession,
    request: { id: RequestId; params: { name: string; arguments?: Record<string, unknown> } },
    access: Access,
    /** Aborted by the caller when the client goes away; also what `cancel` aborts. */
    controller: AbortController,
  ): Promise<PlainAnswer> {
    const notifications: JSONRPCNotification[] = [];
    const respond = (body: { result: unknown } | { error: object }) => ({ messages: [...notifications, { jsonrpc: '2.0', id: request.id, ...body }] });
    // A session closing (DELETE, its credential ending) stops its calls and answers them.
    const closing = session.lifetime.signal;
    const { logger } = this.#deps;
    if (closing.aborted) return respond({ error: errorBody(sessionClosed(), logger) });
    const release = this.#inFlight.claim(session, request.id, controller);
    if (!release) return respond({ error: errorBody(idInUse(request.id), logger) });
    const call: DownstreamCall = {
      principal: access.principal.id,
      access,
      channel: 'mcp',
      sessionId: session.id,
      requestId: request.id,
      clientCapabilities: session.server.getClientCapabilities(),
      logLevel: thresholdOf(session.logLevel),
      signal: controller.signal,
      sendNotification: async (notification) => {
        notifications.push({ jsonrpc: '2.0', ...notification } as JSONRPCNotification);
      },
      sendRequest: async () => {
        throw new WireMcpError(ProtocolErrorCode.MethodNotFound, 'the client accepts no requests');
      },
    };
    try {
      const result = await inCallSlot(session, this.#maxConcurrentCallsPerSession, () => callTool(this.#deps, request.params, call));
      if (textOnly(result)) return respond({ result });
      if (isInputRequiredResult(result)) return respond({ result: cannotAsk(result) });
      const projected =
        result.structuredContent === undefined
          ? result
          : session.server.projectCallToolResult(result, outputSchemaOf(this.#deps.catalog.viewFor(access).view.tools, request.params.name));
      const checked = specTypeSchemas.CallToolResult['~standard'].validate(projected);
      if (checked.issues) throw new WireMcpError(ProtocolErrorCode.InvalidParams, `Invalid tools/call result: ${checked.issues.map((i) => i.message).join('; ')}`);
      return respond({ result: checked.value });
    } catch (error) {
      return respond({ error: errorBody(closing.aborted ? sessionClosed() : error, logger) });
    } finally {
      release();
    }
  }

  /** A client's `notifications/cancelled` for a call on this path; true when it named one. */
  cancel(session: DownstreamSession, message: unknown): boolean {
    if (message === null || typeof message !== 'object') return false;
    const { method, params } = message as { method?: unknown; params?: { requestId?: unknown; reason?: unknown } };
    if (method !== 'notifications/cancelled' || !params || (typeof params.requestId !== 'string' && typeof params.requestId !== 'number')) return false;
    return this.#inFlight.cancel(session, params.requestId, typeof params.reason === 'string' ? params.reason : 'cancelled by the client');
  }
}

/** `message` as a JSON-RPC `tools/call` request (its params unchecked), or undefined. */
function toolsCall(message: unknown): { id: RequestId; params: unknown } | undefined {
  if (message === null || typeof message !== 'object') return undefined;
  const { jsonrpc, method, id, params } = message as { jsonrpc?: unknown; method?: unknown; id?: unknown; params?: unknown };
  if (jsonrpc !== '2.0' || method !== 'tools/call' || (typeof id !== 'string' && typeof id !== 'number')) return undefined;
  return { id, params };
}

/** What CallToolRequestSchema asks of `name` and `arguments`, checked by hand: this runs on every call. */
export function plainParams(params: unknown): params is { name: string; arguments?: Record<string, unknown> } {
  if (params === null || typeof params !== 'object') return false;
  const { name, arguments: args } = params as { name?: unknown; arguments?: unknown };
  return typeof name === 'string' && (args === undefined || (args !== null && typeof args === 'object' && !Array.isArray(args)));
}

function onlyNameAndArguments(params: unknown): boolean {
  if (params === null || typeof params !== 'object') return false;
  for (const key in params) if (key !== 'name' && key !== 'arguments') return false;
  return true;
}

/** A second request under the id of one still in flight: the client broke the rule that ids are not reused in a session. */
function idInUse(id: RequestId): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidRequest, `Request id ${JSON.stringify(id)} is already in use by a request in flight in this session`);
}

/** A failure as a JSON-RPC error object, as `asMcpError` makes it (so a client reads one `MCP error <code>: ` prefix). */
export function errorBody(failure: unknown, logger: Logger): { code: number; message: string; data?: unknown } {
  const error = asMcpError(failure, logger);
  return { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) };
}

/**
 * An upstream's `input_required` answer to a client that declared none of sampling,
 * elicitation or roots: it cannot give the input, so the call fails as a tool error, as the
 * SDK's 2025 shim answers such a client on the regular path.
 */
function cannotAsk(result: { inputRequests?: Record<string, unknown> }): CallToolResult {
  const [key, request] = Object.entries(result.inputRequests ?? {})[0] ?? [];
  const method = (request as { method?: unknown } | undefined)?.method;
  const text =
    key === undefined
      ? 'The tool asked to be called again with its state, which this client cannot be asked for'
      : `Cannot request input '${key}' (${String(method)}): the client on this 2025-era connection did not declare the required capability`;
  return { content: [{ type: 'text', text }], isError: true };
}

/**
 * The most common result, text blocks and maybe `isError`, recognised by hand; it is a valid
 * `CallToolResult`, whose full check covers everything else (that check was most of this path's
 * schema time).
 */
export function textOnly(result: object): boolean {
  for (const key in result) if (key !== 'content' && key !== 'isError') return false;
  const { content, isError } = result as { content?: unknown; isError?: unknown };
  if (!Array.isArray(content) || (isError !== undefined && typeof isError !== 'boolean')) return false;
  for (const block of content) {
    if (block === null || typeof block !== 'object') return false;
    for (const key in block) if (key !== 'type' && key !== 'text') return false;
    if ((block as { type?: unknown }).type !== 'text' || typeof (block as { text?: unknown }).text !== 'string') return false;
  }
  return true;
}

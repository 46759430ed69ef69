import type { ServerResponse } from 'node:http';
import { SUPPORTED_PROTOCOL_VERSIONS, type AuthInfo, type InboundClassificationOutcome, type InboundLegacyRoute } from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';
import type { PlainToolCalls } from '../gateway/plain-tool-calls.js';
import type { Context } from 'hono';
import type { CredentialBoundStreams } from '../gateway/credential-bound-streams.js';
import type { DownstreamSession, SessionOwner } from '../gateway/downstream-session.js';
import { classifyPost } from '../gateway/inbound-classification.js';
import type { ReplicatedTransport } from '../gateway/replicated-transport.js';
import type { PreparedSession, SessionRegistry } from '../gateway/session-registry.js';
import { SharedStateUnavailableError, type SessionRecord } from '../state/shared-state.js';
import type { CallerEnv } from './caller.js';
import { readJsonRpcBody } from './json-body.js';
import { BAD_REQUEST, jsonRpcError, SESSION_NOT_FOUND } from './json-rpc-errors.js';
import type { ModernRequests } from './modern-requests.js';
import { plainModernRoute } from './plain-modern-route.js';
import { onBodyEnd } from './response-end.js';

export interface McpEndpointLimits {
  maxSessions: number;
  maxSessionsPerPrincipal: number;
  maxJsonDepth: number;
}

/** Answers that need no MCP server object: the whole tool list, already serialised, and plain tool calls. */
export interface FastPaths {
  /** The `tools` array `access` may see as UTF-8 JSON when it fits one page, else undefined (the regular path pages it). */
  toolsBytes(access: Access): Uint8Array | undefined;
  toolCalls?: PlainToolCalls | undefined;
}

const TOOLS_LIST_HEAD = Buffer.from('event: message\ndata: {"result":{"tools":');

/**
 * The Streamable HTTP endpoint. The body is parsed here once, so routing never reads it twice.
 * A POST is routed by the SDK's own classification (the one its 2026-07-28 handler applies, so
 * the two cannot disagree): a 2026-07-28 request (one carrying the per-request `_meta`
 * envelope) goes to `modern`, served on its own; anything else is 2025 traffic, which finds
 * the session it belongs to (or opens one for an `initialize`) and goes to that session's
 * transport, or to a fast path. Without `modern` every request takes the 2025 route.
 */
export function mcpEndpoint(sessions: SessionRegistry, limits: McpEndpointLimits, fast?: FastPaths, streams?: CredentialBoundStreams, modern?: ModernRequests) {
  return async (c: Context<CallerEnv>): Promise<Response> => {
    const request = c.req.raw;
    const sessionId = request.headers.get('mcp-session-id');
    const { principal, access, rateKey } = c.get('caller');
    // Handlers read the caller's rights from here; the token itself stays in the HTTP layer.
    // The rate key rides along for the limits a 2026-07-28 caller, without a session, is counted by.
    const authInfo: AuthInfo = { token: '', clientId: principal, scopes: [...access.principal.scopes], extra: { access, rateKey } };
    // A session belongs to the principal that opened it; to anyone else it does not exist.
    // It keeps this request's rights, which decide what is later delivered to it.
    const owner = { principal, rateKey, access };
    // This replica's copy of the session (no round trip), else the session rebuilt here from
    // its record; only the principal that opened it finds it.
    const sessionOf = async (id: string): Promise<DownstreamSession<ReplicatedTransport> | Response> => {
      try {
        return (await sessions.find(id, owner, authInfo)) ?? jsonRpcError(404, SESSION_NOT_FOUND, 'Session not found');
      } catch (error) {
        return unavailable(error);
      }
    };

    if (request.method === 'POST') {
      const parsed = await readJsonRpcBody(request, limits.maxJsonDepth);
      if (parsed instanceof Response) return parsed;
      const route = modern ? modernRoute(request, parsed) : undefined;
      if (modern && route) return modern(request, parsed, { authInfo, principal: access.principal, rateKey }, { route, whenClientLeaves: (leave) => whenClientLeaves(c, leave) });
      if (!sessionId) {
        if (!containsInitialize(parsed)) {
          return jsonRpcError(400, BAD_REQUEST, 'Bad Request: Mcp-Session-Id header is required');
        }
        return initialize(sessions, owner, limits, (prepared) => prepared.transport.handleRequest(request, { parsedBody: parsed, authInfo }), initializeParams(parsed));
      }
      const session = sessions.touch(sessionId, principal, access) ?? (await sessionOf(sessionId));
      if (session instanceof Response) return session;
      // Fast paths answer only what the transport itself would answer with SSE.
      const answerable = fast !== undefined && acceptsTransportAnswer(request);
      const calls = fast?.toolCalls;
      if (calls && answerable) {
        if (calls.qualifies(session, parsed)) {
          const controller = new AbortController();
          const stopWatching = whenClientLeaves(c, () => controller.abort('client disconnected'));
          const { messages } = await calls.answer(session, parsed, access, controller).finally(stopWatching);
          return sseAnswer(messages, session.id);
        }
        const refused = calls.malformed(session, parsed);
        if (refused) return sseAnswer(refused.messages, session.id);
        if (calls.cancel(session, parsed)) return new Response(null, { status: 202 });
      }
      const listed = answerable && plainToolsList(parsed) ? fast.toolsBytes(access) : undefined;
      if (listed !== undefined) {
        // Serving a big catalog is then one copy of bytes encoded once per catalog change, not a
        // serialisation per request. The answer is framed as the transport frames it (one SSE
        // event), so a client sees the same wire either way.
        const id = JSON.stringify((parsed as { id: string | number }).id);
        return new Response(Buffer.concat([TOOLS_LIST_HEAD, listed, Buffer.from(`},"jsonrpc":"2.0","id":${id}}\n\n`)]), {
          headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'mcp-session-id': session.id },
        });
      }
      const ids = requestIds(parsed);
      // Known to the session until answered, so that closing it can answer them (see `requestsInFlight`).
      for (const id of ids) session.requestsInFlight.add(id);
      const settled = () => {
        for (const id of ids) session.requestsInFlight.delete(id);
      };
      let response: Response;
      try {
        response = await session.transport.handleRequest(request, { parsedBody: parsed, authInfo });
      } catch (error) {
        settled();
        throw error;
      }
      if (ids.length === 0 || !response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
        settled();
        return response;
      }
      // A client that goes away before its answer cancels the work: the request's handler is
      // aborted as if the client had sent notifications/cancelled, which reaches the upstream.
      return onBodyEnd(response, (cancelled) => {
        settled();
        if (!cancelled) return;
        for (const requestId of ids) {
          session.transport.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'client disconnected' } });
        }
      });
    }

    if (request.method === 'GET' || request.method === 'DELETE') {
      if (!sessionId) return jsonRpcError(400, BAD_REQUEST, 'Bad Request: Mcp-Session-Id header is required');
      const local = sessions.touch(sessionId, principal, access);
      if (request.method === 'DELETE') {
        // A session held elsewhere is deleted through its record, without a copy built here first.
        if (!local) return deleteElsewhere(sessions, sessionId, principal);
        // The record first: a DELETE answered 200 while the record lived on would leave the
        // session served by every other replica.
        try {
          await sessions.removeRecord(local);
        } catch (error) {
          return unavailable(error);
        }
      }
      const session = local ?? (await sessionOf(sessionId));
      if (session instanceof Response) return session;
      const response = await session.transport.handleRequest(request, { authInfo });
      if (request.method === 'GET' && response.ok && response.body) {
        // The GET stream (not a replay of a request's stream): what is about no request comes here.
        const standalone = await session.transport.opensStandaloneStream(request).catch(() => false);
        if (standalone) await sessions.streamOpened(session);
        session.openStreams++;
        let unwatch = () => {};
        return onBodyEnd(
          response,
          () => {
            unwatch();
            session.openStreams--;
            if (standalone) sessions.streamEnded(session);
            sessions.used(session);
          },
          // The stream outlives this request's credential check: it ends when the credential does.
          (close) => (unwatch = streams?.watch(access.principal, close) ?? unwatch),
        );
      }
      return response;
    }

    return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code: BAD_REQUEST, message: 'Method not allowed.' }, id: null }), {
      status: 405,
      headers: { allow: 'GET, POST, DELETE', 'content-type': 'application/json' },
    });
  };
}

/**
 * Opens a session for an `initialize`: claimed in the shared state first, so that the session
 * limits hold across replicas while the transport answers; a failed initialize leaves nothing.
 */
async function initialize(
  sessions: SessionRegistry,
  owner: SessionOwner,
  limits: McpEndpointLimits,
  answer: (prepared: PreparedSession) => Promise<Response>,
  params: SessionRecord['initialize'],
): Promise<Response> {
  try {
    const claimed = await sessions.claim(owner, 'streamable-http', params, limits);
    if ('refused' in claimed) return sessionLimitRefusal(claimed.refused, limits, 'close some with DELETE');
    const prepared = await sessions.prepare(owner, claimed.id);
    try {
      return await answer(prepared);
    } finally {
      await sessions.discardIfUninitialized(prepared);
    }
  } catch (error) {
    return unavailable(error);
  }
}

/** DELETE of a session this replica holds no copy of. */
async function deleteElsewhere(sessions: SessionRegistry, id: string, principal: string): Promise<Response> {
  try {
    return (await sessions.end(id, principal)) ? new Response(null, { status: 200 }) : jsonRpcError(404, SESSION_NOT_FOUND, 'Session not found');
  } catch (error) {
    return unavailable(error);
  }
}

/**
 * The answer to a session limit reached: 503 for the gateway's (all replicas together), 429
 * for one client's. Counted per rate key, not per principal: without authentication every
 * caller is `anonymous`, and one client must not fill a bucket everyone shares.
 */
export function sessionLimitRefusal(limit: 'per-key' | 'total', limits: McpEndpointLimits, advice: string): Response {
  return limit === 'total'
    ? jsonRpcError(503, BAD_REQUEST, `Too many sessions: the gateway holds at most ${limits.maxSessions}`)
    : jsonRpcError(429, BAD_REQUEST, `Too many sessions for this client (at most ${limits.maxSessionsPerPrincipal}); ${advice}`);
}

/**
 * 503 when the shared session state does not answer: new sessions cannot be counted, and a
 * session not held here may well exist (so not 404). Anything else is rethrown.
 */
export function unavailable(error: unknown): Response {
  if (!(error instanceof SharedStateUnavailableError)) throw error;
  return jsonRpcError(503, BAD_REQUEST, `Session state unavailable: the shared session store does not answer (${error.message}); retry shortly`);
}

/**
 * The classification the SDK's 2026-07-28 handler applies to a POST (`isLegacyRequest` is this,
 * made async and reading the body itself), or undefined for 2025 traffic. Anything else, the
 * refusals of malformed envelopes and headers included, is the 2026 path's to answer, which
 * is handed the classification. About 8 µs for a tool call, most of it the SDK's check of the
 * message shape (more with an envelope to check), spared by the plain cases recognised on sight.
 */
function modernRoute(request: Request, body: unknown): Exclude<InboundClassificationOutcome, InboundLegacyRoute> | undefined {
  const { headers } = request;
  if (plainLegacyRequest(headers.get('mcp-protocol-version'), body)) return undefined;
  const plain = plainModernRoute(headers.get('mcp-protocol-version'), headers.get('mcp-method'), body);
  if (plain) return plain;
  const route = classifyPost(headers, body);
  return route.kind === 'legacy' ? undefined : route;
}

/**
 * The common 2025 request, which the classification above calls legacy on sight: a strict
 * JSON-RPC request (as the SDK's schema has it: `jsonrpc`, an integer or string `id`, a string
 * `method`, object `params`) other than `initialize`, with no `_meta` in its params (so no
 * envelope claim) and no protocol version header or a 2025-era one. Anything else is classified
 * in full; this spares a plain call the classification's three schema checks.
 */
export function plainLegacyRequest(versionHeader: string | null, body: unknown): boolean {
  if (versionHeader !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(versionHeader)) return false;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  for (const key in body) if (key !== 'jsonrpc' && key !== 'id' && key !== 'method' && key !== 'params') return false;
  const { jsonrpc, id, method, params } = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
  if (jsonrpc !== '2.0' || typeof method !== 'string' || method === 'initialize') return false;
  if (typeof id !== 'string' && !Number.isSafeInteger(id)) return false;
  return params === undefined || (params !== null && typeof params === 'object' && !Array.isArray(params) && !Object.hasOwn(params, '_meta'));
}

/** A single first-page `tools/list` request, which the fast path may answer. */
function plainToolsList(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  const { jsonrpc, method, id, params } = body as { jsonrpc?: unknown; method?: unknown; id?: unknown; params?: { cursor?: unknown } };
  if (jsonrpc !== '2.0' || method !== 'tools/list' || (typeof id !== 'string' && typeof id !== 'number')) return false;
  return params === undefined || (params !== null && typeof params === 'object' && params.cursor === undefined);
}

/**
 * The request would get an SSE answer from the transport: it is JSON, the client accepts what
 * the transport sends and its protocol version header (when present) is one it supports.
 */
function acceptsTransportAnswer(request: Request): boolean {
  if (!request.headers.get('content-type')?.includes('application/json')) return false;
  const version = request.headers.get('mcp-protocol-version');
  if (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return false;
  const accept = request.headers.get('accept') ?? '';
  return accept.includes('application/json') && accept.includes('text/event-stream');
}

/** JSON-RPC messages as the transport frames an answer: one SSE event each. */
function sseAnswer(messages: readonly object[], sessionId: string): Response {
  return new Response(messages.map((m) => `event: message\ndata: ${JSON.stringify(m)}\n\n`).join(''), {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'mcp-session-id': sessionId },
  });
}

/**
 * Calls `leave` when the client goes away before its answer is written; returns the function
 * that stops watching. On Node the response's own `close` tells, which spares the adapter
 * building an `AbortSignal` per request; in-process requests (tests) have only the signal.
 */
function whenClientLeaves(c: Context, leave: () => void): () => void {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (outgoing) {
    if (outgoing.destroyed) {
      leave();
      return () => {};
    }
    const onClose = () => {
      if (!outgoing.writableFinished) leave();
    };
    outgoing.once('close', onClose);
    return () => outgoing.off('close', onClose);
  }
  const signal = c.req.raw.signal;
  if (signal.aborted) leave();
  else signal.addEventListener('abort', leave, { once: true });
  return () => signal.removeEventListener('abort', leave);
}

function requestIds(body: unknown): (string | number)[] {
  const messages = Array.isArray(body) ? body : [body];
  const ids: (string | number)[] = [];
  for (const m of messages) {
    if (m === null || typeof m !== 'object') continue;
    const { id, method } = m as { id?: unknown; method?: unknown };
    if (typeof method === 'string' && (typeof id === 'string' || typeof id === 'number')) ids.push(id);
  }
  return ids;
}

function containsInitialize(body: unknown): boolean {
  return initializeMessage(body) !== undefined;
}

function initializeMessage(body: unknown): { params?: unknown } | undefined {
  const messages = Array.isArray(body) ? body : [body];
  return messages.find((m) => m !== null && typeof m === 'object' && (m as { method?: unknown }).method === 'initialize');
}

/**
 * The client's own `initialize` params, as the session's record keeps them for other replicas to
 * replay. Anything malformed here is refused by the transport, and the record discarded.
 */
function initializeParams(body: unknown): SessionRecord['initialize'] {
  const params = initializeMessage(body)?.params as { protocolVersion?: unknown; capabilities?: unknown; clientInfo?: unknown } | undefined;
  const object = (value: unknown) => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
  return {
    protocolVersion: typeof params?.protocolVersion === 'string' ? params.protocolVersion : '',
    capabilities: object(params?.capabilities),
    clientInfo: object(params?.clientInfo),
  };
}

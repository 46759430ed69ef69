import type { AuthInfo } from '@modelcontextprotocol/server';
import type { Context } from 'hono';
import type { CredentialBoundStreams } from '../gateway/credential-bound-streams.js';
import type { SessionRegistry } from '../gateway/session-registry.js';
import { SseSessionTransport } from '../gateway/sse-session-transport.js';
import type { CallerEnv } from './caller.js';
import { readJsonRpcBody } from './json-body.js';
import { BAD_REQUEST, INVALID_REQUEST, jsonRpcError, SESSION_NOT_FOUND } from './json-rpc-errors.js';
import type { McpEndpointLimits } from './mcp-endpoint.js';

/**
 * The 2024-11-05 HTTP+SSE transport, for clients that speak only that (`GET /sse` opens the
 * session and its event stream, `POST /messages?sessionId=<id>` carries each message). A
 * session opened here is an ordinary session of the registry, with the same server, limits and
 * idle expiry as one opened on `/mcp`; it ends with its stream.
 */
export const SSE_PATH = '/sse';
export const MESSAGES_PATH = '/messages';

/** Often enough for proxies that cut a connection idle for 30 or 60 seconds. */
const KEEP_ALIVE_MS = 15_000;

/** What the SDK's transport generates (`randomUUID`); anything else cannot name a session. */
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface SseEndpointDeps {
  sessions: SessionRegistry;
  limits: McpEndpointLimits;
  /** Open streams, ended when the credential that opened them ends. */
  streams?: CredentialBoundStreams | undefined;
  keepAliveMs?: number | undefined;
}

/** `GET /sse`: opens a session and answers with its event stream. */
export function sseStreamEndpoint(deps: SseEndpointDeps) {
  const { sessions, limits } = deps;
  return async (c: Context<CallerEnv>): Promise<Response> => {
    // Hono answers HEAD with the GET handler and drops the body, which would leave a session
    // nobody can read.
    if (c.req.raw.method !== 'GET') return methodNotAllowed('GET');
    const { principal, access, rateKey } = c.get('caller');
    if (sessions.held >= limits.maxSessions) {
      return jsonRpcError(503, BAD_REQUEST, `Too many sessions: the gateway holds at most ${limits.maxSessions}`);
    }
    if (sessions.countFor(rateKey) >= limits.maxSessionsPerPrincipal) {
      return jsonRpcError(429, BAD_REQUEST, `Too many sessions for this client (at most ${limits.maxSessionsPerPrincipal}); close some`);
    }
    const transport = new SseSessionTransport({ endpoint: MESSAGES_PATH, keepAliveMs: deps.keepAliveMs ?? KEEP_ALIVE_MS });
    const session = await sessions.open({ principal, rateKey, access }, transport);
    session.openStreams = 1;
    transport.onanswer = (id) => session.requestsInFlight.delete(id);
    // The stream outlives this request's credential check: the session ends when the credential does.
    const unwatch = deps.streams?.watch(access.principal, () => void sessions.close(session.id)) ?? (() => {});
    void transport.ended.then(() => {
      unwatch();
      session.openStreams = 0;
      return sessions.close(session.id);
    });
    return new Response(transport.stream, {
      headers: {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        // nginx buffers responses unless told otherwise, which would hold back every event.
        'x-accel-buffering': 'no',
      },
    });
  };
}

/** `POST /messages?sessionId=<id>`: one JSON-RPC message for the session; its answer goes out on the stream. */
export function sseMessageEndpoint(deps: SseEndpointDeps & { maxJsonDepth: number }) {
  const { sessions } = deps;
  return async (c: Context<CallerEnv>): Promise<Response> => {
    const id = c.req.query('sessionId');
    if (id === undefined || id === '') return jsonRpcError(400, BAD_REQUEST, 'Bad Request: the sessionId query parameter is required');
    const { principal, access } = c.get('caller');
    // Only the principal that opened the session finds it, and only a session opened on /sse.
    const session = SESSION_ID.test(id) ? sessions.touch(id, principal, access, SseSessionTransport) : undefined;
    if (!session) return jsonRpcError(404, SESSION_NOT_FOUND, 'Session not found');
    const body = await readJsonRpcBody(c.req.raw, deps.maxJsonDepth);
    if (body instanceof Response) return body;
    if (Array.isArray(body)) return jsonRpcError(400, INVALID_REQUEST, 'Invalid Request: this transport takes one message per request');
    // Handlers read the caller's rights from here, as on /mcp; the token itself stays in the HTTP layer.
    const authInfo: AuthInfo = { token: '', clientId: principal, scopes: [...access.principal.scopes], extra: { access } };
    const requestId = requestIdOf(body);
    // Known to the session until answered, so that closing it can answer (and cancel) it.
    if (requestId !== undefined) session.requestsInFlight.add(requestId);
    try {
      session.transport.receive(body, { authInfo, request: c.req.raw });
    } catch (error) {
      if (requestId !== undefined) session.requestsInFlight.delete(requestId);
      return jsonRpcError(400, INVALID_REQUEST, `Invalid Request: ${(error as Error).message}`);
    }
    // A cancelled request is never answered (the SDK sends nothing for it): it is no longer in flight.
    const cancelled = cancelledIdOf(body);
    if (cancelled !== undefined) session.requestsInFlight.delete(cancelled);
    return new Response('Accepted', { status: 202 });
  };
}

/** The id of a request (a message with a method and an id); undefined for notifications and answers. */
function requestIdOf(body: unknown): string | number | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { id, method } = body as { id?: unknown; method?: unknown };
  return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number') ? id : undefined;
}

/** The request a `notifications/cancelled` names; undefined for any other message. */
function cancelledIdOf(body: unknown): string | number | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { method, params } = body as { method?: unknown; params?: { requestId?: unknown } };
  const id = method === 'notifications/cancelled' ? params?.requestId : undefined;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

function methodNotAllowed(allow: string): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code: BAD_REQUEST, message: 'Method not allowed.' }, id: null }), {
    status: 405,
    headers: { allow, 'content-type': 'application/json' },
  });
}

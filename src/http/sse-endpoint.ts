import { parseJSONRPCMessage, type AuthInfo, type JSONRPCMessage } from '@modelcontextprotocol/server';
import type { Context } from 'hono';
import type { CredentialBoundStreams } from '../gateway/credential-bound-streams.js';
import type { SessionRegistry } from '../gateway/session-registry.js';
import { receiveInSession, SseSessionTransport } from '../gateway/sse-session-transport.js';
import type { CallerEnv } from './caller.js';
import { readJsonRpcBody } from './json-body.js';
import { BAD_REQUEST, INVALID_REQUEST, jsonRpcError, SESSION_NOT_FOUND } from './json-rpc-errors.js';
import { sessionLimitRefusal, unavailable, type McpEndpointLimits } from './mcp-endpoint.js';

/**
 * The 2024-11-05 HTTP+SSE transport, for clients that speak only that (`GET /sse` opens the
 * session and its event stream, `POST /messages?sessionId=<id>` carries each message). A
 * session opened here is an ordinary session of the registry, with the same server, limits and
 * idle expiry as one opened on `/mcp`; it ends with its stream.
 */
export const SSE_PATH = '/sse';
export const MESSAGES_PATH = '/messages';

/**
 * What the record of an HTTP+SSE session keeps as its `initialize`: the client sends its own only
 * later, on the stream, and it is never replayed (such a session is served where its stream is).
 */
const NOT_REPLAYED = { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: {} };

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
    const owner = { principal, rateKey, access };
    const transport = new SseSessionTransport({ endpoint: MESSAGES_PATH, keepAliveMs: deps.keepAliveMs ?? KEEP_ALIVE_MS });
    // Counted against the session limits of every replica from the moment its id is handed out.
    let claimed: Awaited<ReturnType<SessionRegistry['claim']>>;
    try {
      claimed = await sessions.claim(owner, 'sse', NOT_REPLAYED, limits, transport.sessionId);
    } catch (error) {
      return unavailable(error);
    }
    if ('refused' in claimed) return sessionLimitRefusal(claimed.refused, limits, 'close some');
    const session = await sessions.open(owner, transport);
    session.openStreams = 1;
    transport.onanswer = (id) => session.requestsInFlight.delete(id);
    // The stream outlives this request's credential check: the session ends when the credential does.
    const unwatch = deps.streams?.watch(access.principal, () => void sessions.close(session.id)) ?? (() => {});
    void transport.ended.then(() => {
      unwatch();
      session.openStreams = 0;
      // Unless it is closed already (the stream ends whenever the session does).
      if (sessions.get(session.id) === session) return sessions.close(session.id);
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
    if (!SESSION_ID.test(id)) return jsonRpcError(404, SESSION_NOT_FOUND, 'Session not found');
    // Only the principal that opened the session finds it, and only a session opened on /sse.
    const session = sessions.touch(id, principal, access, SseSessionTransport);
    const body = await readJsonRpcBody(c.req.raw, deps.maxJsonDepth);
    if (body instanceof Response) return body;
    if (Array.isArray(body)) return jsonRpcError(400, INVALID_REQUEST, 'Invalid Request: this transport takes one message per request');
    if (!session) return forwarded(sessions, id, principal, body);
    // Handlers read the caller's rights from here, as on /mcp; the token itself stays in the HTTP layer.
    const authInfo: AuthInfo = { token: '', clientId: principal, scopes: [...access.principal.scopes], extra: { access } };
    try {
      receiveInSession(session, body, { authInfo, request: c.req.raw });
    } catch (error) {
      return jsonRpcError(400, INVALID_REQUEST, `Invalid Request: ${(error as Error).message}`);
    }
    return new Response('Accepted', { status: 202 });
  };
}

/**
 * A message for a session whose stream another replica holds: everything an HTTP+SSE session
 * does is done there, so the message goes there, and is accepted here.
 */
async function forwarded(sessions: SessionRegistry, id: string, principal: string, body: unknown): Promise<Response> {
  let message: JSONRPCMessage;
  try {
    message = parseJSONRPCMessage(body);
  } catch (error) {
    return jsonRpcError(400, INVALID_REQUEST, `Invalid Request: ${(error as Error).message}`);
  }
  try {
    if (!(await sessions.forwardToStream(id, principal, message))) return jsonRpcError(404, SESSION_NOT_FOUND, 'Session not found');
  } catch (error) {
    return unavailable(error);
  }
  return new Response('Accepted', { status: 202 });
}

function methodNotAllowed(allow: string): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code: BAD_REQUEST, message: 'Method not allowed.' }, id: null }), {
    status: 405,
    headers: { allow, 'content-type': 'application/json' },
  });
}

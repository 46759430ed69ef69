import type { AuthInfo, InboundClassificationOutcome, InboundLegacyRoute, McpHttpHandler } from '@modelcontextprotocol/server';
import type { Principal } from '../auth/principal.js';
import { withHandover } from '../gateway/call-handover.js';
import type { CredentialBoundStreams } from '../gateway/credential-bound-streams.js';
import { accessIn } from '../gateway/mcp-handlers.js';
import type { SessionlessToolCalls } from '../gateway/sessionless-tool-calls.js';
import type { TaskListen } from '../gateway/task-listen.js';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import { BAD_REQUEST, HEADER_MISMATCH, jsonRpcError } from './json-rpc-errors.js';
import { paramHeaderMismatch } from './param-header-check.js';
import { plainSessionlessCall } from './plain-sessionless-call.js';
import { onBodyEnd } from './response-end.js';

/** The caller of one 2026-07-28 request, as the HTTP layer authenticated it. */
export interface ModernCaller {
  authInfo: AuthInfo;
  principal: Principal;
  /** What per-caller limits count against (see `Caller.rateKey`). */
  rateKey: string;
}

/** What the endpoint knows of a 2026-07-28 request beyond its body and caller. */
export interface ModernRequestContext {
  /** The SDK's classification of the request, by which the endpoint routed it here. */
  route: Exclude<InboundClassificationOutcome, InboundLegacyRoute>;
  /** Calls `leave` when the client goes away before its answer; returns the function that stops watching. */
  whenClientLeaves(leave: () => void): () => void;
}

/** Serves one 2026-07-28 request whose body the endpoint already parsed and classified. */
export type ModernRequests = (request: Request, parsedBody: unknown, caller: ModernCaller, context: ModernRequestContext) => Promise<Response>;

export interface ModernRequestsOptions {
  /** Listen streams ended when the credential that opened them ends. */
  streams?: CredentialBoundStreams | undefined;
  /** Open `subscriptions/listen` streams one caller may hold (the SDK bounds them all together). */
  maxListenStreamsPerCaller: number;
  /** Serves the listen streams whose filter names task ids (the SDK's honor no extension fields). */
  taskListens?: Pick<TaskListen, 'serve'> | undefined;
  /** Where a `tools/call`'s tool is found, to check its `Mcp-Param-*` headers against its arguments. */
  catalog: Pick<LiveCatalog, 'upstreamToolsByName'>;
  /** Plain `tools/call`s answered without a per-request server; without it `handler` serves them. */
  toolCalls?: Pick<SessionlessToolCalls, 'answer'> | undefined;
}

/**
 * The 2026-07-28 side of `/mcp`: each request is served by a server built for its caller
 * (`handler` is the SDK's `createMcpHandler`, strict about the era, which also validates the
 * envelope and the `Mcp-Method`/`Mcp-Name` headers and answers their errors with the request's
 * id). The body was read and depth-checked once by the endpoint and is passed on parsed.
 *
 * A plain `tools/call` (see `plainSessionlessCall`: one the SDK would serve to the handler, and
 * that needs nothing of the client) is run by `toolCalls` without that server, which answers
 * plain outcomes itself and hands the rest over to `handler` with the call already run.
 *
 * A `subscriptions/listen` stream is the one thing that lasts: like a 2025 session it is
 * counted per caller (so one client cannot take every place the SDK allows), and like a 2025
 * GET stream it ends when the credential it was opened with does.
 */
export function modernRequests(handler: Pick<McpHttpHandler, 'fetch'>, options: ModernRequestsOptions): ModernRequests {
  const listening = new Map<string, number>();
  const count = (rateKey: string, change: 1 | -1) => {
    const next = (listening.get(rateKey) ?? 0) + change;
    if (next > 0) listening.set(rateKey, next);
    else listening.delete(rateKey);
  };
  return async (request, parsedBody, { authInfo, principal, rateKey }, context) => {
    const listen = listenId(parsedBody);
    if (listen === undefined) {
      const access = accessIn(authInfo);
      const mismatch = paramHeaderMismatch(parsedBody, request.headers, options.catalog, access);
      if (mismatch !== undefined) return jsonRpcError(400, HEADER_MISMATCH, mismatch, requestIdOf(parsedBody));
      const calls = options.toolCalls;
      const plain = calls ? plainSessionlessCall(request.headers, context.route) : undefined;
      if (!calls || !plain) return handler.fetch(request, { authInfo, parsedBody });
      const controller = new AbortController();
      const stopWatching = context.whenClientLeaves(() => controller.abort('client disconnected'));
      const answer = await calls.answer(plain, { access, rateKey }, controller.signal).finally(stopWatching);
      if ('handover' in answer) return handler.fetch(request, { authInfo: withHandover(authInfo, answer.handover), parsedBody });
      // As the SDK's per-request transport sends a lone answer.
      return new Response(JSON.stringify(answer.message), { status: 200, headers: { 'content-type': 'application/json' } });
    }
    if ((listening.get(rateKey) ?? 0) >= options.maxListenStreamsPerCaller) {
      return jsonRpcError(429, BAD_REQUEST, `Too many listen streams for this client (at most ${options.maxListenStreamsPerCaller})`, listen);
    }
    // Held while the SDK opens the stream, so concurrent listens cannot all pass the check.
    count(rateKey, +1);
    let response: Response;
    try {
      response = (await options.taskListens?.serve(request, parsedBody, accessIn(authInfo))) ?? (await handler.fetch(request, { authInfo, parsedBody }));
    } catch (error) {
      count(rateKey, -1);
      throw error;
    }
    if (!response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
      count(rateKey, -1);
      return response;
    }
    let unwatch = () => {};
    return onBodyEnd(
      response,
      () => {
        unwatch();
        count(rateKey, -1);
      },
      (close) => (unwatch = options.streams?.watch(principal, close) ?? unwatch),
    );
  };
}

/** The id of a `subscriptions/listen` request, or undefined for anything else. */
function listenId(body: unknown): string | number | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { method, id } = body as { method?: unknown; id?: unknown };
  return method === 'subscriptions/listen' && (typeof id === 'string' || typeof id === 'number') ? id : undefined;
}

function requestIdOf(body: unknown): string | number | null {
  const id = body !== null && typeof body === 'object' ? (body as { id?: unknown }).id : undefined;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

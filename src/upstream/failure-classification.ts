import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError, SseError, UnauthorizedError } from '@modelcontextprotocol/client';
import { UpstreamAuthError } from './auth/upstream-auth.js';
import { NoCommonVersionError, NotJsonRpcError } from './errors.js';

/**
 * What a failed connection attempt means: `misconfigured` when no retry can fix it (a missing
 * command, refused credentials, a credential that cannot be read, a client the authorization
 * server refuses, a user who must authorise first, no protocol version in common) and the
 * server waits for a config change or an admin restart; `retryable` otherwise (an authorization
 * server that failed may answer later).
 */
export function classifyConnectFailure(error: unknown): 'misconfigured' | 'retryable' {
  const auth = authFailureIn(error);
  if (auth) return auth.kind === 'failed' ? 'retryable' : 'misconfigured';
  if (error instanceof UnauthorizedError) return 'misconfigured';
  if (error instanceof SseError && (error.code === 401 || error.code === 403)) return 'misconfigured';
  if (error instanceof NoCommonVersionError) return 'misconfigured';
  if (error instanceof SdkHttpError) return error.data.status === 401 || error.data.status === 403 ? 'misconfigured' : 'retryable';
  if (error instanceof SdkError && (error.code === SdkErrorCode.ClientHttpAuthentication || error.code === SdkErrorCode.ClientHttpForbidden)) return 'misconfigured';
  if (error instanceof Error && /^cannot start ".*": (command not found|permission denied)$/.test(error.message)) return 'misconfigured';
  return 'retryable';
}

/**
 * What a failed request says about the upstream, and so what the circuit breaker hears:
 * - `cancelled`: the caller gave up; nothing learnt.
 * - `answer`: a JSON-RPC error is an answer, the upstream is alive.
 * - `timeout`: no answer in time; a fault, but the upstream may well be reachable (a slow tool).
 * - `closed`: the connection closed under the request.
 * - `bad-response`: something came back that is not MCP.
 * - `session-ended`: HTTP 404 to a request that named our session (2025): the upstream
 *   restarted and forgot it. Without a session (2026-07-28) a 404 says nothing of the
 *   connection; one carrying the request's JSON-RPC error never gets here (it is the answer).
 * - `refused`: an HTTP client error without a JSON-RPC answer (400, 413, 431, ...): the upstream
 *   is alive and refused this request for what it was (too large, malformed), which says
 *   nothing of the next one. Not 401/403 (the gateway's credentials, every request alike), nor
 *   408/429 (the upstream's own load, a reason to back off).
 * - `unreachable`: any other transport failure (refused, reset).
 */
export type RequestFailure = 'cancelled' | 'answer' | 'timeout' | 'closed' | 'bad-response' | 'session-ended' | 'refused' | 'unreachable';

/** Client errors that speak of the upstream or of the gateway's standing with it, not of one request. */
const NOT_THE_REQUESTS_OWN = new Set([401, 403, 408, 429]);

/** Classifies an error thrown by a request to an upstream (see `RequestFailure`). */
export function classifyRequestFailure(error: unknown, aborted: boolean): RequestFailure {
  if (aborted) return 'cancelled';
  if (error instanceof ProtocolError) return 'answer';
  if (error instanceof NotJsonRpcError) return 'bad-response';
  if (error instanceof SdkHttpError) {
    const status = error.data.status;
    if (status === 404 && typeof error.data.sessionId === 'string') return 'session-ended';
    return typeof status === 'number' && status >= 400 && status < 500 && !NOT_THE_REQUESTS_OWN.has(status) ? 'refused' : 'unreachable';
  }
  if (error instanceof SdkError) {
    switch (error.code) {
      case SdkErrorCode.RequestTimeout:
        return 'timeout';
      case SdkErrorCode.ConnectionClosed:
      case SdkErrorCode.NotConnected:
        return 'closed';
      // The answer came, but not as MCP says it must (a 2026 result without its resultType, say).
      case SdkErrorCode.InvalidResult:
      case SdkErrorCode.UnsupportedResultType:
      case SdkErrorCode.ClientHttpUnexpectedContent:
        return 'bad-response';
      default:
        return 'unreachable';
    }
  }
  return 'unreachable';
}

/** What an upstream's refusal (`refused`) said: its HTTP status and reason phrase. */
export function describeRefusal(error: unknown): string {
  if (!(error instanceof SdkHttpError)) return describeError(error);
  const { status, statusText } = error.data as { status?: number; statusText?: string };
  return `HTTP ${status ?? '?'}${statusText ? ` ${statusText}` : ''}`;
}

/**
 * The reason the gateway could not authenticate, when `error` is it or was caused by it (the
 * SDK wraps what a transport throws during its version probe).
 */
export function authFailureIn(error: unknown): UpstreamAuthError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof UpstreamAuthError) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * How a refused TCP connection is described: nothing reached the upstream, so a replicated
 * server may send the request to another replica (see `replicated-server.ts`).
 */
export const CONNECTION_REFUSED = 'connection refused';

/** A one-line, human explanation of a connection or request failure. */
export function describeError(error: unknown): string {
  const auth = authFailureIn(error);
  if (auth) return auth.message;
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) return 'timed out waiting for initialize';
  // However the SDK words it ("Version negotiation failed: ... (HTTP 401)"), it is the credentials.
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpAuthentication) return 'upstream refused the credentials (401)';
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpForbidden) return 'upstream refused access with these credentials (403)';
  if (error instanceof NotJsonRpcError) return error.message;
  if (error instanceof Error) {
    const code = causeCode(error);
    if (code === 'ECONNREFUSED') return CONNECTION_REFUSED;
    if (code) return `${error.message} (${code})`;
    return error.message;
  }
  return String(error);
}

/** The system error code (ECONNREFUSED, ...) anywhere down the error's `cause` chain. */
function causeCode(error: Error): string | undefined {
  let cause = (error as { cause?: unknown }).cause;
  for (let depth = 0; depth < 5 && cause && typeof cause === 'object'; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

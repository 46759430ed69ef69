import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { NotJsonRpcError } from './errors.js';

/**
 * What a failed connection attempt means: `misconfigured` when no retry can fix it (a missing
 * command, refused credentials) and the server waits for a config change or an admin restart;
 * `retryable` otherwise.
 */
export function classifyConnectFailure(error: unknown): 'misconfigured' | 'retryable' {
  if (error instanceof StreamableHTTPError) return error.code === 401 || error.code === 403 ? 'misconfigured' : 'retryable';
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
 * - `session-ended`: HTTP 404 for our session: the upstream restarted and forgot it.
 * - `unreachable`: any other transport failure (refused, reset).
 */
export type RequestFailure = 'cancelled' | 'answer' | 'timeout' | 'closed' | 'bad-response' | 'session-ended' | 'unreachable';

/** Classifies an error thrown by a request to an upstream (see `RequestFailure`). */
export function classifyRequestFailure(error: unknown, aborted: boolean): RequestFailure {
  if (aborted) return 'cancelled';
  if (error instanceof McpError) {
    if (error.code === ErrorCode.RequestTimeout) return 'timeout';
    if (error.code === ErrorCode.ConnectionClosed) return 'closed';
    return 'answer';
  }
  if (error instanceof NotJsonRpcError) return 'bad-response';
  if (error instanceof StreamableHTTPError && error.code === 404) return 'session-ended';
  return 'unreachable';
}

/** A one-line, human explanation of a connection or request failure. */
export function describeError(error: unknown): string {
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) return 'timed out waiting for initialize';
  if (error instanceof NotJsonRpcError) return error.message;
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'ECONNREFUSED') return 'connection refused';
    if (cause?.code) return `${error.message} (${cause.code})`;
    return error.message;
  }
  return String(error);
}

import {
  isJSONRPCErrorResponse,
  parseJSONRPCMessage,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from '@modelcontextprotocol/client';
import { INSUFFICIENT_SCOPE } from './auth/authorized-fetch.js';
import type { AuthChallenge } from './auth/upstream-auth.js';
import type { EventStreamResponse, UpstreamResponse } from './upstream-response.js';

/*
 * What the Streamable HTTP client transport (http-client-transport.ts) makes of an upstream's
 * HTTP answers (as upstream-response.ts reads them): the JSON-RPC in them, whether they answer
 * a request, and the errors for a refusal, an answer too large, or one that never came.
 */

export type RequestId = JSONRPCRequest['id'];

/**
 * A request whose response ended without its answer: an SSE stream that ended or broke off
 * (and could not be resumed), or an empty JSON body. The SDK would otherwise wait for the
 * request's timeout; it is read as a connection lost under the request.
 */
export class UnansweredRequestError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'UnansweredRequestError';
  }
}

/** A refusal the auth may recover from: 401, or 403 naming `insufficient_scope`. */
export function authChallenge(response: Pick<UpstreamResponse, 'statusCode' | 'headers'>): AuthChallenge | undefined {
  const status = response.statusCode;
  const header = response.headers['www-authenticate'];
  const wwwAuthenticate = Array.isArray(header) ? header.join(', ') : header;
  if (status === 401) return { status, wwwAuthenticate };
  if (status === 403 && wwwAuthenticate && INSUFFICIENT_SCOPE.test(wwwAuthenticate)) return { status, wwwAuthenticate };
  return undefined;
}

/**
 * An HTTP refusal as the SDK's own transport reports one: the status and the body's start,
 * which the SDK reads to tell a 2025-only server (a JSON-RPC error body) from an auth wall;
 * and the session the request named, if any (a 404 to it means the server forgot it).
 */
export function httpError(status: number, statusText: string | undefined, text: string, sessionId: string | undefined): SdkHttpError {
  const session = sessionId !== undefined ? { sessionId } : {};
  // What an auth wall says is not kept: an upstream may echo the credentials it refused.
  if (status === 401) return new SdkHttpError(SdkErrorCode.ClientHttpAuthentication, 'upstream refused the credentials (401)', { status, statusText, text: '', ...session });
  if (status === 403) return new SdkHttpError(SdkErrorCode.ClientHttpForbidden, 'upstream refused access with these credentials (403)', { status, statusText, text: '', ...session });
  return new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint (HTTP ${status}): ${text.slice(0, 500)}`, { status, statusText, text, ...session });
}

export function asJsonRpcMessage(value: unknown): JSONRPCMessage | undefined {
  if (isPlainResult(value)) return value;
  try {
    return parseJSONRPCMessage(value);
  } catch {
    return undefined;
  }
}

/**
 * The answer to nearly every request, checked by hand as the SDK's schema checks it (a strict
 * `{jsonrpc: "2.0", id, result}` with an integer or string id and an object result); a result
 * with `_meta`, which the schema also reads, and anything else take the schema. The schema's
 * parse was most of the per-answer cost of reading a response here.
 */
export function isPlainResult(value: unknown): value is JSONRPCMessage {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  let keys = 0;
  for (const key in value) {
    if (key !== 'jsonrpc' && key !== 'id' && key !== 'result') return false;
    keys++;
  }
  const { jsonrpc, id, result } = value as { jsonrpc?: unknown; id?: unknown; result?: unknown };
  if (keys !== 3 || jsonrpc !== '2.0' || !(typeof id === 'string' || Number.isSafeInteger(id))) return false;
  return result !== null && typeof result === 'object' && !Array.isArray(result) && !Object.hasOwn(result, '_meta');
}

/** The messages of a JSON response body, or undefined if it is not JSON-RPC. */
export function jsonRpcMessages(text: string): JSONRPCMessage[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  const messages: JSONRPCMessage[] = [];
  for (const item of items) {
    const message = asJsonRpcMessage(item);
    if (!message) return undefined;
    messages.push(message);
  }
  return messages.length > 0 ? messages : undefined;
}

/** Whether `response` is an event stream (a 2xx `text/event-stream`), its body read as it comes. */
export function isEventStream(response: UpstreamResponse): response is EventStreamResponse {
  return response.stream !== undefined;
}

/** The JSON-RPC error a refusal's body holds, when it is the answer to `message` (and all the body holds). */
export function errorAnswering(text: string, message: JSONRPCMessage): JSONRPCMessage | undefined {
  const answer = jsonRpcMessages(text);
  const only = answer?.length === 1 ? answer[0]! : undefined;
  return only && isJSONRPCErrorResponse(only) && 'id' in message && only.id === message.id ? only : undefined;
}

/**
 * Whether `message` is the answer (a result or an error) to request `id`. It passed the
 * JSON-RPC schema (or its hand check) already, whose message kinds are strict: one without a
 * method that holds a result or an error is a response; the schema's type guards, run again on
 * every answer, were a percent of the gateway's CPU.
 */
export function answers(message: JSONRPCMessage, id: RequestId): boolean {
  return isResponse(message) && String(message.id) === String(id);
}

/** Whether `message`, a checked JSON-RPC message, is a response (a result or an error). */
export function isResponse(message: JSONRPCMessage): message is JSONRPCResponse {
  return !('method' in message) && ('result' in message || 'error' in message);
}

/** The request a `notifications/cancelled` gives up, if `message` is one. */
export function cancelledRequestId(message: JSONRPCMessage): RequestId | undefined {
  if (!('method' in message) || message.method !== 'notifications/cancelled' || 'id' in message) return undefined;
  const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
  return typeof requestId === 'string' || typeof requestId === 'number' ? requestId : undefined;
}

/**
 * A message over the size limit. It is read as a bad response (the SDK's "unexpected
 * content"): the upstream is reachable, but what it sent cannot be used.
 */
export function tooLarge(what: string, limit: number): SdkError {
  return new SdkError(SdkErrorCode.ClientHttpUnexpectedContent, `${what} larger than ${formatBytes(limit)}, the limit for one message`, { limit });
}

function formatBytes(bytes: number): string {
  const mib = 1024 * 1024;
  if (bytes >= mib && bytes % mib === 0) return `${bytes / mib} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

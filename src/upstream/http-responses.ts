import type { IncomingMessage } from 'node:http';
import {
  isJSONRPCErrorResponse,
  isJSONRPCResultResponse,
  parseJSONRPCMessage,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/client';
import { INSUFFICIENT_SCOPE } from './auth/authorized-fetch.js';
import type { AuthChallenge } from './auth/upstream-auth.js';

/*
 * What the Streamable HTTP client transport (http-client-transport.ts) makes of an upstream's
 * HTTP answers: bodies read within the message limit, the JSON-RPC in them, whether they answer
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
export function authChallenge(response: IncomingMessage): AuthChallenge | undefined {
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

/**
 * The body of `response`, failing as soon as it passes `limit` bytes (the response is then
 * destroyed), or when the response closes before its end.
 */
export function readAll(response: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        settled = true;
        response.destroy();
        reject(tooLarge('a response body', limit));
        return;
      }
      chunks.push(chunk);
    });
    response.once('end', () => {
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    response.once('error', (error) => {
      settled = true;
      reject(error);
    });
    // Destroyed by an abort: no `end`, and not always an `error`. Every response closes, so the
    // error is only built when nothing settled first (an Error and its stack on every answer
    // was a percent of the gateway's CPU).
    response.once('close', () => {
      if (!settled) reject(new Error('the response closed before its end'));
    });
  });
}

export function isEventStream(response: IncomingMessage): boolean {
  const status = response.statusCode ?? 0;
  return status >= 200 && status < 300 && String(response.headers['content-type'] ?? '').startsWith('text/event-stream');
}

/** The JSON-RPC error a refusal's body holds, when it is the answer to `message` (and all the body holds). */
export function errorAnswering(text: string, message: JSONRPCMessage): JSONRPCMessage | undefined {
  const answer = jsonRpcMessages(text);
  const only = answer?.length === 1 ? answer[0]! : undefined;
  return only && isJSONRPCErrorResponse(only) && 'id' in message && only.id === message.id ? only : undefined;
}

/** Whether `message` is the answer (a result or an error) to request `id`. */
export function answers(message: JSONRPCMessage, id: RequestId): boolean {
  return (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && String(message.id) === String(id);
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

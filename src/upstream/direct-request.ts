import { ProtocolError, SdkError, SdkErrorCode, type Client, type JSONRPCResponse } from '@modelcontextprotocol/client';
import { HttpClientTransport, type AnswerWaiter } from './http-client-transport.js';

/** What a request sent with `sendDirect` needs besides its method and params. */
export interface DirectRequestOptions {
  /** The caller's: aborted, the request is cancelled upstream and fails with the reason. */
  signal?: AbortSignal | undefined;
  /** Milliseconds until the request is cancelled upstream and fails as timed out. */
  timeout: number;
  /** Per-request headers (`Mcp-Param-*`). */
  headers?: Record<string, string> | undefined;
  /** Who the request is for: the messages on its response stream are delivered as theirs. */
  owner: unknown;
}

/**
 * The Streamable HTTP transport of `client`, when a request on it may be sent with `sendDirect`:
 * a 2025 session (a 2026-07-28 request carries the SDK's `_meta` envelope and is cancelled by
 * aborting its stream) whose request counter is where the SDK keeps it (owner-channel.ts, 5).
 */
export function directTransport(client: Client, modern: boolean): HttpClientTransport | undefined {
  if (modern) return undefined;
  const transport = client.transport;
  return transport instanceof HttpClientTransport && typeof (client as unknown as SdkCounter)._requestMessageId === 'number' ? transport : undefined;
}

/** The SDK client's request counter (see owner-channel.ts, 5). */
interface SdkCounter {
  _requestMessageId: number;
}

/**
 * Sends one request of a 2025 session on its HTTP transport and reads its answer as
 * `Client.request` does, without the client's request machinery: the SDK's registry of
 * response handlers, its result decoding and the schema check of every answer, and a further
 * promise chain per request (12–16 % of the upstream side's CPU per call, bench/upstream-hop.ts). What
 * the upstream sees is what the client would have sent: the same JSON-RPC request, numbered from
 * the client's own sequence, and on a timeout or an abort the same `notifications/cancelled`.
 * What the caller gets is what the client would have given: the result as the 2025 codec
 * decodes it (without `resultType`), an error answer as a `ProtocolError`, a timeout or an abort
 * as the same `SdkError`, a transport failure as its error, a closed connection as
 * `ConnectionClosed`. Messages that arrive on the request's stream before its answer (logs,
 * server requests) still go to the client, marked as `owner`'s.
 *
 * Progress is not handled here (the SDK client matches it to its requests): a request asking
 * for progress goes through the client.
 */
export function sendDirect(
  client: Client,
  transport: HttpClientTransport,
  method: string,
  params: Record<string, unknown> | undefined,
  options: DirectRequestOptions,
): Promise<Record<string, unknown>> {
  const { signal, timeout } = options;
  if (signal?.aborted) return Promise.reject(asSdkError(signal.reason));
  const id = (client as unknown as SdkCounter)._requestMessageId++;
  // The key order `Client.request` sends.
  const request = params ? { method, params, jsonrpc: '2.0' as const, id } : { method, jsonrpc: '2.0' as const, id };
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // An answer that still comes (after a cancellation) goes to the client, as for its own requests.
      transport.forget(id, waiter);
    };
    const cancel = (reason: unknown) => {
      if (settled) return;
      settle();
      const notice = { jsonrpc: '2.0' as const, method: 'notifications/cancelled', params: { requestId: id, reason: String(reason) } };
      transport.send(notice).catch((error: unknown) => client.onerror?.(new Error(`Failed to send cancellation: ${String(error)}`)));
      reject(asSdkError(reason));
    };
    const onAbort = () => cancel(signal?.reason);
    const answered = (answer: JSONRPCResponse | Error) => {
      // Given up already: the caller has its reason.
      if (settled || signal?.aborted) return;
      settle();
      if (answer instanceof Error) reject(answer);
      else if ('error' in answer) reject(ProtocolError.fromError(answer.error.code, answer.error.message, answer.error.data));
      else resolve(decodedResult(answer.result));
    };
    // Waits past the end of the POST (an answer may come on the GET stream after a 202), as the client's handler does.
    const waiter: AnswerWaiter = { answered, closed: answered };
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => cancel(new SdkError(SdkErrorCode.RequestTimeout, 'Request timed out', { timeout })), timeout);
    transport.sendRequest(request, waiter, options.owner, options.headers).catch((error: unknown) => {
      if (settled) return;
      settle();
      reject(error as Error);
    });
  });
}

/** What the SDK's 2025 codec makes of a result: the same, without a `resultType` (a 2026-07-28 field). */
function decodedResult(result: Record<string, unknown>): Record<string, unknown> {
  if (!('resultType' in result)) return result;
  const rest = { ...result };
  delete rest.resultType;
  return rest;
}

/** A cancellation's reason as the SDK client fails its request with it. */
function asSdkError(reason: unknown): SdkError {
  return reason instanceof SdkError ? reason : new SdkError(SdkErrorCode.RequestTimeout, String(reason));
}

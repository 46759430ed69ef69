import { modernEnvelope } from './modern-envelope.js';

/** A JSON-RPC message as a test reads it off a 2026-07-28 response. */
export interface RpcMessage {
  id?: number | string;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown> & { resultType?: string; inputRequests?: Record<string, { method: string; params?: Record<string, unknown> }>; requestState?: string };
  error?: { code: number; message: string; data?: unknown };
}

export interface ModernRequestOptions {
  /** The caller's headers (authentication). */
  headers?: Record<string, string>;
  /** What the request's envelope declares. */
  capabilities?: Record<string, unknown>;
  signal?: AbortSignal;
  /** The request's id (default: a random one). */
  id?: number | string;
}

/**
 * One raw 2026-07-28 request, with the envelope and the standard headers the SDK client sends
 * (`Mcp-Name` from the params' `name`, `uri` or `taskId`): its answer, and every message the
 * response carried (JSON, or an SSE stream with notifications ahead of the answer).
 */
export async function modernRequest(url: string, method: string, params: Record<string, unknown>, options: ModernRequestOptions = {}): Promise<{ answer: RpcMessage; messages: RpcMessage[] }> {
  const id = options.id ?? Math.floor(Math.random() * 1e9);
  const name = params.name ?? params.uri ?? params.taskId;
  const response = await fetch(url, {
    method: 'POST',
    signal: options.signal,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(typeof name === 'string' && method !== 'subscriptions/listen' ? { 'mcp-name': name } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: modernEnvelope(options.capabilities) } }),
  });
  const text = await response.text();
  const messages = response.headers.get('content-type')?.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => JSON.parse(line.slice(5)) as RpcMessage)
    : [JSON.parse(text) as RpcMessage];
  const answer = messages.find((m) => m.id === id && m.method === undefined);
  if (!answer) throw new Error(`no answer to ${method}: ${text}`);
  return { answer, messages };
}

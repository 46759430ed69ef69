/**
 * A raw JSON-RPC POST in the 2025-11-25 session `sessionId`, with the headers the SDK's
 * transport sends (`headers` add to or replace them): for what a client library would not send,
 * or to read an answer as it is on the wire.
 */
export function postInSession(url: string, sessionId: string, body: unknown, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    signal: options.signal ?? null,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-11-25',
      ...options.headers,
    },
    body: JSON.stringify(body),
  });
}

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SignJWT } from 'jose';
import { expect } from 'vitest';

export const JWT_SECRET = 'test-shared-secret-that-is-long-enough-0123456789';

/** An HS256 token as a platform signing its users' tokens would issue it. */
export async function hs256Token(claims: Record<string, unknown>, options: { secret?: string; expiresIn?: string | number } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** The SDK client connected with fixed request headers (a bearer token, an API key...). */
export async function clientWithHeaders(url: string, headers: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport; close(): Promise<void> }> {
  const client = new Client({ name: 'auth-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return {
    client,
    transport,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A raw JSON-RPC initialize POST, for status and header checks. */
export function initializeRequest(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
}

/** Opens a session and its GET stream; `ended` settles when the gateway ends the stream. */
export async function openStream(url: string, headers: Record<string, string>): Promise<{ ended: Promise<'ended'>; cancel(): Promise<void> }> {
  const init = await initializeRequest(url, headers);
  expect(init.status).toBe(200);
  await init.body?.cancel();
  const session = init.headers.get('mcp-session-id')!;
  const common = { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
  const initialized = await fetch(url, {
    method: 'POST',
    headers: { ...common, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  expect(initialized.status).toBe(202);
  const stream = await fetch(url, { headers: { ...common, accept: 'text/event-stream' } });
  expect(stream.status).toBe(200);
  const reader = stream.body!.getReader();
  const ended = (async () => {
    while (!(await reader.read()).done);
    return 'ended' as const;
  })();
  return { ended, cancel: () => reader.cancel().catch(() => {}) };
}

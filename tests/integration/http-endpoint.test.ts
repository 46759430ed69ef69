import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, startGateway, testConfig, waitFor, type RunningGateway } from '../helpers/gateway.js';

const JSON_AND_SSE = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

/** A request with full control of the headers (fetch will not let a test forge Host). */
function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('the /mcp endpoint refuses bad requests with specific errors', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({}, { maxBodyBytes: 2048 }));
  });
  afterAll(async () => gateway?.stop());

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(gateway.url, { method: 'POST', headers: { ...JSON_AND_SSE, ...headers }, body });

  it('answers malformed JSON with 400 and -32700', async () => {
    const response = await post('{"jsonrpc": "2.0", "id": 1, "method": ');
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: number; message: string }; id: null };
    expect(body.error.code).toBe(-32700);
    expect(body.error.message).toMatch(/^Parse error/);
    expect(body.id).toBeNull();
  });

  it('requires a session id for anything but initialize', async () => {
    const response = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' } });
    const get = await fetch(gateway.url, { headers: { accept: 'text/event-stream' } });
    expect(get.status).toBe(400);
  });

  it('answers an unknown session with 404', async () => {
    const response = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), { 'mcp-session-id': 'not-a-session' });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: -32001, message: 'Session not found' } });
  });

  it('ends a session on DELETE; the id is then unknown', async () => {
    const { client, close } = await connectClient(gateway.url);
    const transport = client.transport as unknown as { sessionId: string };
    const sessionId = transport.sessionId;
    expect(gateway.conflux.sessions.size).toBeGreaterThanOrEqual(1);
    const deleted = await fetch(gateway.url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' } });
    expect(deleted.status).toBe(200);
    const after = await post(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }), {
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-11-25',
    });
    expect(after.status).toBe(404);
    await close();
  });

  it('refuses an unsupported MCP-Protocol-Version with 400', async () => {
    const init = await post(JSON.stringify(INITIALIZE));
    const sessionId = init.headers.get('mcp-session-id')!;
    await init.body?.cancel();
    const response = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), {
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '1999-01-01',
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/Unsupported protocol version/);
  });

  it('refuses a body over the limit with 413', async () => {
    const response = await post(JSON.stringify({ ...INITIALIZE, padding: 'x'.repeat(4096) }));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: -32000, message: 'Request body larger than 2048 bytes' } });
  });

  it('refuses a foreign Host header (DNS rebinding) and a foreign Origin', async () => {
    const body = JSON.stringify(INITIALIZE);
    const badHost = await rawRequest(gateway.url, { headers: { ...JSON_AND_SSE, host: 'evil.example:8000' }, body });
    expect(badHost.status).toBe(403);
    expect(JSON.parse(badHost.body).error.message).toBe('Forbidden: Host "evil.example:8000" is not allowed (gateway.allowedHosts)');
    const badOrigin = await post(body, { origin: 'http://evil.example' });
    expect(badOrigin.status).toBe(403);
    const goodOrigin = await post(body, { origin: 'http://localhost:6274' });
    expect(goodOrigin.status).toBe(200);
    await goodOrigin.body?.cancel();
  });

  it('answers other methods with 405 and unknown paths with 404', async () => {
    const put = await fetch(gateway.url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST, DELETE');
    const missing = await fetch(gateway.url.replace('/mcp', '/nowhere'));
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'not_found', message: 'No route for GET /nowhere' } });
  });

  it('answers a well-formed request for an unknown method with -32601', async () => {
    const { client, close } = await connectClient(gateway.url);
    await expect(client.request({ method: 'no/such/method' } as never, {} as never)).rejects.toMatchObject({ code: -32601 });
    await close();
  });
});

describe('idle sessions', () => {
  it('closes a session with no requests, whether or not it keeps a GET stream open', async () => {
    const gateway = await startGateway(testConfig({}, { sessionIdleSeconds: 0.4 }));
    try {
      const idle = await connectClient(gateway.url);
      const listening = await connectClient(gateway.url);
      const listeningId = (listening.client.transport as unknown as { sessionId: string }).sessionId;
      // The SDK client opens a GET stream after initialize; close the idle one's by dropping its transport's stream.
      await idle.client.close();
      // A stream alone is not use: otherwise one held open keeps a session (and its quota slot) forever.
      await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'both idle sessions to close');
      expect(gateway.conflux.sessions.get(listeningId)).toBeUndefined();
      await listening.client.close();
    } finally {
      await gateway.stop();
    }
  });
});

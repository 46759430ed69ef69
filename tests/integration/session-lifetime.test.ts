import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOUCH_INTERVAL_MS } from '../../src/gateway/session-records.js';
import { startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { currentLoadScale } from '../helpers/load-scale.js';

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** A raw `initialize` sent from `localAddress` (any 127.0.0.0/8 address reaches a loopback listener). */
function initializeFrom(url: string, localAddress: string): Promise<{ status: number; body: string; sessionId: string | undefined }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', localAddress, headers: MCP_HEADERS },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body, sessionId: res.headers['mcp-session-id'] as string | undefined }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(INITIALIZE);
  });
}

describe('session quotas without authentication', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({}, { limits: { maxSessionsPerPrincipal: 2 } }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('counts sessions per client address, not in one bucket every anonymous caller shares', async () => {
    const first = await initializeFrom(gateway.url, '127.0.0.1');
    const second = await initializeFrom(gateway.url, '127.0.0.1');
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await initializeFrom(gateway.url, '127.0.0.1');
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('at most 2') } });
    // Another client is not locked out by the first one's sessions.
    const other = await initializeFrom(gateway.url, '127.0.0.2');
    expect(other.status).toBe(200);
    expect(gateway.conflux.sessions.countFor('ip:127.0.0.1')).toBe(2);
    expect(gateway.conflux.sessions.countFor('ip:127.0.0.2')).toBe(1);
    // Closing a session gives its slot back to that address.
    const closed = await fetch(gateway.url, { method: 'DELETE', headers: { 'mcp-session-id': first.sessionId!, 'mcp-protocol-version': '2025-06-18' } });
    expect(closed.status).toBe(200);
    expect(gateway.conflux.sessions.countFor('ip:127.0.0.1')).toBe(1);
    expect((await initializeFrom(gateway.url, '127.0.0.1')).status).toBe(200);
  });
});

describe('idle sessions', () => {
  // Longer on a busy machine, so that a session does not expire between a test's own requests.
  const idleSeconds = Math.ceil(currentLoadScale());
  // An idle session is closed by the first sweep after this much time without a request.
  const closesIdleAfterMs = idleSeconds * 1000 + TOUCH_INTERVAL_MS;
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { sessionIdleSeconds: idleSeconds }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  async function openSession(): Promise<string> {
    const init = await fetch(gateway.url, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    expect(init.status).toBe(200);
    await init.text();
    const id = init.headers.get('mcp-session-id')!;
    const initialized = await fetch(gateway.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(initialized.status).toBe(202);
    return id;
  }

  it('closes a session without requests even while its GET stream is open, and ends that stream', async () => {
    const id = await openSession();
    const stream = await fetch(gateway.url, { headers: { accept: 'text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' } });
    expect(stream.status).toBe(200);
    const session = gateway.conflux.sessions.get(id)!;
    await waitFor(() => session.openStreams === 1, 3000, 'the GET stream to be counted');

    let ended: 'done' | 'error' | undefined;
    void (async () => {
      const reader = stream.body!.getReader();
      try {
        while (!(await reader.read()).done);
        ended = 'done';
      } catch {
        ended = 'error';
      }
    })();
    await waitFor(() => ended !== undefined, 10_000, 'the GET stream to end');
    expect(ended).toBe('done');
    expect(gateway.conflux.sessions.get(id)).toBeUndefined();
    // The gateway's side of the stream is finished too, not left open.
    expect(session.openStreams).toBe(0);
    const after = await fetch(gateway.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(after.status).toBe(404);
  });

  it('keeps a session whose tool call is still running', async () => {
    const id = await openSession();
    const session = gateway.conflux.sessions.get(id)!;
    const ms = closesIdleAfterMs + 3000; // running through several sweeps past that time
    const pending = fetch(gateway.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'alpha__sleep', arguments: { ms } } }),
    });
    await waitFor(() => session.activeCalls === 1, 3000, 'the call to start');
    // A sweep found the call running when it would have closed the session were it idle: still open.
    await waitFor(() => session.busyAt - session.lastSeen > closesIdleAfterMs, ms, 'a sweep past the idle time');
    expect(gateway.conflux.sessions.get(id)).toBe(session);
    const call = await pending;
    expect(call.status).toBe(200);
    const answer = JSON.parse((await call.text()).replace(/^event: message\ndata: /, '')) as { result: object };
    expect(textOf(answer.result)).toBe(`alpha slept ${ms}`);
  });
});

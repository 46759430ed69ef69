import { Server, type AuthInfo, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Access } from '../../src/auth/access-policy.js';
import { ReplicatedTransport, untag } from '../../src/gateway/replicated-transport.js';
import { SessionRegistry } from '../../src/gateway/session-registry.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { ReplicaMessage } from '../../src/state/shared-state.js';

describe('session places held while an initialize is answered', () => {
  it('count against the quota of their key and the total until released, once', () => {
    const registry = new SessionRegistry({ logger: silentLogger(), idleMs: 0, createServer: () => Promise.reject(new Error('not used')) as never });
    const first = registry.reserve('ip:10.0.0.1');
    const second = registry.reserve('ip:10.0.0.1');
    registry.reserve('ip:10.0.0.2');
    expect(registry.countFor('ip:10.0.0.1')).toBe(2);
    expect(registry.countFor('ip:10.0.0.2')).toBe(1);
    expect(registry.held).toBe(3);
    expect(registry.size).toBe(0);
    first();
    first();
    expect(registry.countFor('ip:10.0.0.1')).toBe(1);
    second();
    expect(registry.countFor('ip:10.0.0.1')).toBe(0);
    expect(registry.held).toBe(1);
  });
});

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE_PARAMS = { protocolVersion: '2025-11-25', capabilities: { sampling: {} }, clientInfo: { name: 'unit', version: '1' } };
const ACCESS = {} as Access;
const AUTH: AuthInfo = { token: '', clientId: 'ann', scopes: [], extra: { access: ACCESS } };

function post(transport: ReplicatedTransport, body: object, session?: string): Promise<Response> {
  const headers = session ? { ...HEADERS, 'mcp-session-id': session } : HEADERS;
  return transport.handleRequest(new Request('http://localhost/mcp', { method: 'POST', headers, body: JSON.stringify(body) }), { parsedBody: body, authInfo: AUTH });
}

describe('ReplicatedTransport', () => {
  it("tags the ids of the server's requests with its replica, and routes the client's answers by the tag", async () => {
    const server = new Server({ name: 'unit', version: '1' }, { capabilities: {} });
    const transport = new ReplicatedTransport({ replicaId: 'r1', sessionIdGenerator: () => 's1' });
    await server.connect(transport);
    await (await post(transport, { jsonrpc: '2.0', id: 0, method: 'initialize', params: INITIALIZE_PARAMS })).text();
    const standalone: JSONRPCMessage[] = [];
    const elsewhere: [string, JSONRPCMessage][] = [];
    const cancelled: RequestId[] = [];
    transport.links = {
      answerElsewhere: (replica, message) => void elsewhere.push([replica, message]),
      cancelled: (requestId) => void cancelled.push(requestId),
      standalone: async (message) => {
        standalone.push(message);
        return true;
      },
    };
    const ping = server.ping();
    await vi.waitFor(() => expect(standalone).toHaveLength(1));
    expect(standalone[0]).toEqual({ jsonrpc: '2.0', id: 'r1:0', method: 'ping' });
    // Another replica's request: handed over, nothing left for this copy.
    const foreign = await post(transport, { jsonrpc: '2.0', id: 'r2:5', result: {} }, 's1');
    expect(foreign.status).toBe(202);
    expect(elsewhere).toEqual([['r2', { jsonrpc: '2.0', id: 'r2:5', result: {} }]]);
    // Its own: given back the SDK's id, which settles the request.
    expect((await post(transport, { jsonrpc: '2.0', id: 'r1:0', result: {} }, 's1')).status).toBe(202);
    await expect(ping).resolves.toEqual({});
    expect((await post(transport, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } }, 's1')).status).toBe(202);
    expect(cancelled).toEqual([7]);
    await server.close();
  });

  it('reads a tag back only from ids it could have written', () => {
    expect(untag('3f2c:12')).toEqual({ replica: '3f2c', id: 12 });
    expect(untag('a:b:3')).toEqual({ replica: 'a:b', id: 3 });
    for (const id of ['12', ':12', 'r1:', 'r1:x', 'plain']) expect(untag(id)).toBeUndefined();
  });
});

describe('session lifetime over the shared state', () => {
  const IDLE_MS = 10_000;
  let hub: MemoryHub;
  let registry: SessionRegistry;
  let closed: ReplicaMessage[];

  beforeEach(() => {
    vi.useFakeTimers();
    hub = new MemoryHub();
    closed = [];
    hub.busFor('observer').onMessage((message) => void closed.push(message));
    registry = new SessionRegistry({
      logger: silentLogger(),
      idleMs: IDLE_MS,
      state: new MemorySharedState(hub),
      createServer: () => ({ server: new Server({ name: 'unit', version: '1' }, { capabilities: {} }), capabilities: {} }),
    });
  });
  afterEach(async () => {
    await registry.closeAll();
    vi.useRealTimers();
  });

  const owner = { principal: 'ann', rateKey: 'principal:ann', access: ACCESS };
  async function open(): Promise<string> {
    const claimed = await registry.claim(owner, 'streamable-http', INITIALIZE_PARAMS, { maxSessions: 10, maxSessionsPerPrincipal: 10 });
    if (!('id' in claimed)) throw new Error('refused');
    const prepared = await registry.prepare(owner, claimed.id);
    await (await post(prepared.transport, { jsonrpc: '2.0', id: 0, method: 'initialize', params: INITIALIZE_PARAMS })).text();
    await registry.discardIfUninitialized(prepared);
    return claimed.id;
  }

  it("extends the record's life at most once a second, however many requests come", async () => {
    const id = await open();
    const touches = vi.spyOn(hub.sessions, 'touch');
    for (let i = 0; i < 20; i++) registry.touch(id, 'ann', ACCESS);
    await vi.advanceTimersByTimeAsync(900);
    for (let i = 0; i < 20; i++) registry.touch(id, 'ann', ACCESS);
    expect(touches).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(100);
    registry.touch(id, 'ann', ACCESS);
    expect(touches).toHaveBeenCalledTimes(2);
    // Each gives the idle time from then, plus the interval a later request may go untold.
    expect(touches).toHaveBeenLastCalledWith(id, IDLE_MS + 1000);
  });

  it('ends an idle session when no replica used it: record and events gone, the others told', async () => {
    const id = await open();
    expect(hub.events.has(id)).toBe(true);
    await vi.advanceTimersByTimeAsync(IDLE_MS + 1000 + IDLE_MS / 2);
    expect(registry.get(id)).toBeUndefined();
    expect(await hub.sessions.get(id)).toBeUndefined();
    expect(hub.events.has(id)).toBe(false);
    expect(closed).toEqual([{ kind: 'session-closed', session: id }]);
  });

  it('drops only its copy of a session another replica kept in use, and rebuilds it on the next request', async () => {
    const id = await open();
    await vi.advanceTimersByTimeAsync(IDLE_MS - 1000);
    // Another replica's request.
    await hub.sessions.touch(id, IDLE_MS + 1000);
    await vi.advanceTimersByTimeAsync(2000 + IDLE_MS / 2);
    expect(registry.get(id)).toBeUndefined();
    expect(await hub.sessions.get(id)).toMatchObject({ id, principal: 'ann', initialize: INITIALIZE_PARAMS });
    expect(hub.events.has(id)).toBe(true);
    expect(closed).toEqual([]);
    const rebuilt = await registry.find(id, owner, AUTH);
    expect(rebuilt).toMatchObject({ id, principal: 'ann', origin: 'rebuilt' });
    expect(rebuilt!.server.getClientCapabilities()).toEqual({ sampling: {} });
    // Nobody else finds it.
    expect(await registry.find(id, { ...owner, principal: 'bob' }, AUTH)).toBeUndefined();
  });
});

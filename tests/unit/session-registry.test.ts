import { Server, type AuthInfo, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Access } from '../../src/auth/access-policy.js';
import { ReplicatedTransport, STANDALONE_STREAM, untag } from '../../src/gateway/replicated-transport.js';
import { SessionRecords } from '../../src/gateway/session-records.js';
import { SessionRegistry } from '../../src/gateway/session-registry.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { ReplicaMessage } from '../../src/state/shared-state.js';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE_PARAMS = { protocolVersion: '2025-11-25', capabilities: { sampling: {} }, clientInfo: { name: 'unit', version: '1' } };
const ACCESS = { principal: { id: 'ann', scopes: [] } } as unknown as Access;
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
  /** A second replica on the same hub; `createServer` gives its copies' servers. */
  function replica(state: MemorySharedState, createServer?: () => { server: Server; capabilities: object }): SessionRegistry {
    return new SessionRegistry({
      logger: silentLogger(),
      idleMs: IDLE_MS,
      state,
      createServer: createServer ?? (() => ({ server: new Server({ name: 'unit', version: '1' }, { capabilities: {} }), capabilities: {} })),
    });
  }

  it('keeps both of two subscriptions recorded at once through different replicas', async () => {
    const id = await open();
    const [a, b] = [0, 1].map(() => new SessionRecords(new MemorySharedState(hub), silentLogger(), IDLE_MS)) as [SessionRecords, SessionRecords];
    await Promise.all([a.change(id, { subscribed: 'demo://one' }), b.change(id, { subscribed: 'demo://two' })]);
    expect((await hub.sessions.get(id))?.subscriptions.sort()).toEqual(['demo://one', 'demo://two']);
    await Promise.all([a.change(id, { unsubscribed: 'demo://one' }), b.change(id, { unsubscribed: 'demo://two' })]);
    expect((await hub.sessions.get(id))?.subscriptions).toEqual([]);
  });

  it('answers the request that rebuilt a copy before its settings are applied, and a replayed setting writes nothing back', async () => {
    const id = await open();
    await hub.sessions.update(id, { logLevel: 'debug' });
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const applied: string[] = [];
    const other: SessionRegistry = replica(new MemorySharedState(hub), () => {
      const server = new Server({ name: 'unit', version: '1' }, { capabilities: { logging: {} } });
      server.setRequestHandler('logging/setLevel', async (request, ctx) => {
        entered();
        // The upstream round trips of the real handler.
        await gate;
        const session = other.get(ctx.sessionId)!;
        session.logLevel = request.params.level;
        await other.recordSettings(session, { logLevel: request.params.level }, ctx.http?.authInfo);
        applied.push(request.params.level);
        return {};
      });
      return { server, capabilities: { logging: {} } };
    });
    try {
      // Resolves while the recorded level is still being applied.
      const copy = await other.find(id, owner, AUTH);
      expect(copy).toMatchObject({ id, origin: 'rebuilt', logLevel: undefined });
      await inHandler;
      // The client sets another level through the first replica meanwhile.
      await hub.sessions.update(id, { logLevel: 'error' });
      release();
      await vi.waitFor(() => expect(applied).toEqual(['debug']));
      expect((await hub.sessions.get(id))?.logLevel).toBe('error');
    } finally {
      release();
      await other.closeAll();
    }
  });

  it('keeps a message for a stream whose holder stopped without a word, and the record stops naming it', async () => {
    const id = await open();
    const state = new MemorySharedState(hub);
    // The replica's bus handler, to take away as a crash would (no release, no goodbye).
    let crash = () => {};
    const listen = state.bus.onMessage.bind(state.bus);
    state.bus.onMessage = (handler) => (crash = listen(handler));
    const other = replica(state);
    try {
      const copy = (await other.find(id, owner, AUTH))!;
      await other.streamOpened(copy);
      expect((await hub.sessions.get(id))?.streamHolder).toBe(state.replicaId);
      // The first replica heard who holds the stream.
      await vi.waitFor(() => expect(registry.get(id)?.streamHolder).toBe(state.replicaId));
      const since = await hub.events.get(id)!.storeEvent(STANDALONE_STREAM, {} as JSONRPCMessage);
      crash();
      const message = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'for the stream' } } as JSONRPCMessage;
      await registry.get(id)!.transport.send(message);
      expect((await hub.sessions.get(id))?.streamHolder).toBeUndefined();
      expect(registry.get(id)?.streamHolder).toBeUndefined();
      // Kept for the client's resume.
      const replayed: JSONRPCMessage[] = [];
      await hub.events.get(id)!.replayEventsAfter(since, { send: async (_eventId, m) => void replayed.push(m) });
      expect(replayed).toEqual([message]);
    } finally {
      await other.closeAll();
    }
  });

  it('tells every session of a list change, and sends messages about no request, without reading the shared state', async () => {
    const ids = [await open(), await open(), await open()];
    const reads = vi.spyOn(hub.sessions, 'get');
    registry.notifyListsChanged({ tools: true, prompts: false, resources: false });
    await registry.get(ids[0])!.transport.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } });
    await vi.advanceTimersByTimeAsync(0);
    expect(reads).not.toHaveBeenCalled();
  });
});

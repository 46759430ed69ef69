import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { SessionRecords } from '../../src/gateway/session-records.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { SharedStateUnavailableError, type SessionRecord, type SharedState } from '../../src/state/shared-state.js';
import { RedisSharedState } from '../../src/state/redis-state.js';
import { stdioFixture, testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { newRedis, redisAvailable, testSharedState } from '../helpers/redis.js';

/**
 * Two replicas sharing their state, behind a round-robin proxy with no stickiness: a session
 * opened through one is served by both. The scenarios take the shared state as a parameter, so
 * that the same ones run against every backend.
 */
interface SharedStates {
  /** The state of each replica: two views of one shared store. */
  states: [SharedState, SharedState];
  /** A session's record as the shared store holds it. */
  record(id: string): Promise<SessionRecord | undefined>;
  cleanup(): Promise<void>;
}

const memoryStates = async (): Promise<SharedStates> => {
  const hub = new MemoryHub();
  return { states: [new MemorySharedState(hub), new MemorySharedState(hub)], record: (id) => hub.sessions.get(id), cleanup: async () => {} };
};

describeReplicas('memory', memoryStates);

const redisStates = async (): Promise<SharedStates> => {
  const redis = newRedis();
  const keyPrefix = `test-replicas-${randomUUID()}:`;
  const states = [0, 1].map(() => testSharedState(redis, keyPrefix)) as [RedisSharedState, RedisSharedState];
  return {
    states,
    record: (id) => states[0].sessions.get(id),
    cleanup: async () => {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
};

if (await redisAvailable()) describeReplicas('redis', redisStates);

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const VERSION = '2025-11-25';
const INITIALIZE = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

interface Replica {
  conflux: Conflux;
  url: string;
  stop(): Promise<void>;
}

function describeReplicas(backend: string, shared: () => Promise<SharedStates>): void {
  describe(`sessions served by any replica (${backend})`, () => {
    let store: SharedStates;
    let replicas: Replica[];
    let proxy: RoundRobinProxy;

    beforeAll(async () => {
      store = await shared();
      const config = testConfig({ alpha: stdioFixture('alpha') }, { limits: { maxSessionsPerPrincipal: 2 } });
      replicas = await Promise.all(store.states.map((state) => startReplica(config, state)));
      proxy = await roundRobinProxy(replicas.map((r) => r.url));
    });
    afterAll(async () => {
      await proxy?.close();
      await Promise.all((replicas ?? []).map((r) => r.stop()));
      await store?.cleanup();
    });

    /** Which replica (0 or 1) a replica id names. */
    const indexOf = (replicaId: string | undefined) => replicas.findIndex((r) => r.conflux.state.replicaId === replicaId);

    describe('an SDK client through the proxy', () => {
      let peer: Peer;
      beforeAll(async () => {
        peer = await connectPeer(proxy.url);
      });
      afterAll(async () => {
        await peer?.close();
      });

      it('is served by both replicas: one opened the session, the other rebuilt it from its record', async () => {
        const names = (await peer.client.listTools()).tools.map((t) => t.name);
        expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__count', 'alpha__ask_llm', 'alpha__touch']));
        for (let i = 0; i < 4; i++) expect(textOf(await peer.client.callTool({ name: 'alpha__echo', arguments: { text: `hi ${i}` } }))).toBe(`alpha: hi ${i}`);
        const copies = replicas.map((r) => r.conflux.sessions.get(peer.sessionId));
        expect(copies.map((c) => c?.principal)).toEqual(['anonymous', 'anonymous']);
        expect(copies.map((c) => c?.origin).sort()).toEqual(['opened', 'rebuilt']);
        // The rebuilt copy negotiated what the client asked for the first time.
        expect(copies[0]!.server.getClientCapabilities()).toMatchObject({ sampling: {} });
        expect(copies[1]!.server.getClientCapabilities()).toEqual(copies[0]!.server.getClientCapabilities());
        expect((await store.record(peer.sessionId))?.initialize).toMatchObject({ protocolVersion: VERSION, capabilities: { sampling: {} }, clientInfo: { name: 'ann' } });
        // Requests really alternated between the replicas.
        const served = proxy.hits.filter((h) => h.session === peer.sessionId).map((h) => h.target);
        expect(new Set(served)).toEqual(new Set([0, 1]));
        // One session, opened on one replica: each holds a copy, one counts it created.
        const probe = (r: Replica, path: string) => fetch(r.url.replace(/\/mcp$/, path));
        const health = await Promise.all(replicas.map(async (r) => ((await (await probe(r, '/health')).json()) as { sessions: number }).sessions));
        expect(health).toEqual([1, 1]);
        const created = await Promise.all(replicas.map(async (r) => Number(/^mcp_user_sessions_created_total (\d+)$/m.exec(await (await probe(r, '/metrics')).text())?.[1])));
        expect(created.sort()).toEqual([0, 1]);
      });

      it('relays progress on whichever replica runs the call', async () => {
        for (let round = 0; round < 2; round++) {
          const seen: number[] = [];
          const result = await peer.client.callTool({ name: 'alpha__count', arguments: { n: 3 } }, { onprogress: (p) => void seen.push(p.progress) });
          expect(textOf(result)).toBe('alpha counted to 3');
          expect(seen).toEqual([1, 2, 3]);
        }
      });

      it('hands the client’s answer to a sampling request to the replica that asked, when it lands on the other', async () => {
        let callTarget: number | undefined;
        const before = proxy.hits.length;
        proxy.steer = (rpc) => {
          if (isCall(rpc, 'alpha__ask_llm')) return undefined;
          // The answer (no method, the id the asking replica tagged) goes to the replica that did not ask.
          if (rpc !== null && typeof rpc === 'object' && 'result' in rpc && callTarget !== undefined) return 1 - callTarget;
          return undefined;
        };
        proxy.onHit = (hit) => {
          if (isCall(hit.rpc, 'alpha__ask_llm')) callTarget = hit.target;
        };
        try {
          expect(textOf(await peer.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'why?' } }))).toBe('alpha heard: ann answers why?');
        } finally {
          proxy.steer = undefined;
          proxy.onHit = undefined;
        }
        const answer = proxy.hits.slice(before).find((h) => h.rpc !== null && typeof h.rpc === 'object' && 'result' in h.rpc)!;
        expect(answer.target).toBe(1 - callTarget!);
        // Tagged by the replica that sent the request.
        expect(String((answer.rpc as { id: unknown }).id)).toMatch(new RegExp(`^${replicas[callTarget!]!.conflux.state.replicaId}:\\d+$`));
      });

      it('delivers a resource update on the GET stream, from the replica that does not hold it', async () => {
        const uri = 'demo://alpha/static';
        await peer.client.subscribeResource({ uri });
        const holder = indexOf((await store.record(peer.sessionId))?.streamHolder);
        expect(holder).toBeGreaterThanOrEqual(0);
        // Every copy subscribes its own upstream: the update comes from whichever upstream changed.
        await waitFor(() => replicas.every((r) => r.conflux.sessions.get(peer.sessionId)?.subscriptions.has(uri)), 5000, 'both copies to subscribe');
        proxy.steer = (rpc) => (isCall(rpc, 'alpha__touch') ? 1 - holder : undefined);
        try {
          await waitFor(async () => textOf(await peer.client.callTool({ name: 'alpha__touch', arguments: { uri } })) === 'notified', 5000, 'the upstream to be subscribed');
        } finally {
          proxy.steer = undefined;
        }
        await waitFor(() => peer.updates.length > 0, 5000, 'the update on the GET stream');
        expect(peer.updates).toEqual([uri]);
        expect((await store.record(peer.sessionId))?.subscriptions).toEqual([uri]);
      });

      it('gives every copy the log level the client set through one of them', async () => {
        await peer.client.setLoggingLevel('debug');
        expect((await store.record(peer.sessionId))?.logLevel).toBe('debug');
        await waitFor(() => replicas.every((r) => r.conflux.sessions.get(peer.sessionId)?.logLevel === 'debug'), 5000, 'both copies to take the level');
      });

      it('tells the client once of a list change both replicas see', async () => {
        const holder = indexOf((await store.record(peer.sessionId))?.streamHolder);
        const heard = peer.listChanges.length;
        const { servers } = testConfig({ alpha: stdioFixture('alpha'), beta: stdioFixture('beta') });
        await Promise.all(replicas.map((r) => r.conflux.registry.setConfigServers(servers)));
        await waitFor(() => replicas.every((r) => r.conflux.catalog.current.tools.some((t) => t.name === 'beta__echo')), 15_000, 'both catalogs to change');
        await waitFor(() => peer.listChanges.length > heard, 5000, 'the list change');
        // A message routed from the other replica after its catalog changed: a list change it sent would have come first.
        const updates = peer.updates.length;
        proxy.steer = (rpc) => (isCall(rpc, 'alpha__touch') ? 1 - holder : undefined);
        try {
          expect(textOf(await peer.client.callTool({ name: 'alpha__touch', arguments: { uri: 'demo://alpha/static' } }))).toBe('notified');
        } finally {
          proxy.steer = undefined;
        }
        await waitFor(() => peer.updates.length > updates, 5000, 'the update');
        expect(peer.listChanges.slice(heard)).toEqual(['tools']);
      });
    });

    it('records two subscriptions made at once through both replicas, and tells whether a replica message was received', async () => {
      const id = await initializeRaw(replicas[0]!.url, '127.0.0.11');
      const records = store.states.map((state) => new SessionRecords(state, silentLogger(), 60_000));
      await Promise.all(records.map((r, i) => r.change(id, { subscribed: `demo://alpha/${i}` })));
      expect((await store.record(id))?.subscriptions.sort()).toEqual(['demo://alpha/0', 'demo://alpha/1']);
      await Promise.all(records.map((r, i) => r.change(id, { unsubscribed: `demo://alpha/${i}` })));
      expect((await store.record(id))?.subscriptions).toEqual([]);
      // A replica listening receives; one that is gone does not, and the sender is told.
      const [a, b] = store.states;
      expect(await a.bus.send(b.replicaId, { kind: 'session-changed', session: id })).toBe(true);
      expect(await a.bus.send(randomUUID(), { kind: 'session-changed', session: id })).toBe(false);
      expect((await deleteSession(replicas[0]!.url, id, '127.0.0.11')).status).toBe(200);
    });

    it('ends a session deleted through one replica on the other, whether or not it held a copy', async () => {
      const from = '127.0.0.3';
      // Copies on both replicas; deleted through the first, gone on the second.
      const both = await initializeRaw(replicas[0]!.url, from);
      expect((await post(replicas[1]!.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, both, from)).status).toBe(200);
      expect(replicas[1]!.conflux.sessions.get(both)).toBeDefined();
      expect((await deleteSession(replicas[0]!.url, both, from)).status).toBe(200);
      await waitFor(() => replicas[1]!.conflux.sessions.get(both) === undefined, 5000, 'the other copy to close');
      const after = await post(replicas[1]!.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, both, from);
      expect(after.status).toBe(404);
      expect(await after.json()).toMatchObject({ error: { code: -32001, message: 'Session not found' } });
      expect(await store.record(both)).toBeUndefined();

      // A copy on the first only; deleted through the second, which never held one.
      const one = await initializeRaw(replicas[0]!.url, from);
      expect(replicas[1]!.conflux.sessions.get(one)).toBeUndefined();
      expect((await deleteSession(replicas[1]!.url, one, from)).status).toBe(200);
      expect(replicas[1]!.conflux.sessions.get(one)).toBeUndefined();
      await waitFor(() => replicas[0]!.conflux.sessions.get(one) === undefined, 5000, 'the copy to close');
      expect((await post(replicas[0]!.url, { jsonrpc: '2.0', id: 3, method: 'ping' }, one, from)).status).toBe(404);
    });

    it('holds a client to its session quota across both replicas', async () => {
      const from = '127.0.0.5';
      // One session opened on each replica: either alone would have room for more.
      const first = await initializeRaw(replicas[0]!.url, from);
      const second = await initializeRaw(replicas[1]!.url, from);
      expect(replicas.map((r) => r.conflux.sessions.countFor(`ip:${from}`))).toEqual([1, 1]);
      for (let i = 0; i < 2; i++) {
        const refused = await raw(proxy.url, { method: 'POST', body: INITIALIZE, from });
        expect(refused.status).toBe(429);
        expect(await refused.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('at most 2') } });
      }
      expect(new Set(proxy.hits.slice(-2).map((h) => h.target))).toEqual(new Set([0, 1]));
      // Closing one through either replica gives its place back everywhere.
      expect((await deleteSession(proxy.url, first, from)).status).toBe(200);
      const third = await initializeRaw(proxy.url, from);
      for (const id of [second, third]) expect((await deleteSession(proxy.url, id, from)).status).toBe(200);
    });

    it('hands a message posted for an HTTP+SSE session to the replica holding its stream', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const stream = await eventReader(await fetch(a.url.replace(/\/mcp$/, '/sse'), { headers: { accept: 'text/event-stream' } }));
      const endpoint = await stream.next();
      expect(endpoint.event).toBe('endpoint');
      const id = new URLSearchParams(endpoint.data.split('?')[1]).get('sessionId')!;
      expect(await store.record(id)).toMatchObject({ wire: 'sse', streamHolder: a.conflux.state.replicaId });
      const messages = b.url.replace(/\/mcp$/, endpoint.data);
      const send = (message: object) => raw(messages, { method: 'POST', body: message });
      expect((await send(INITIALIZE)).status).toBe(202);
      expect(JSON.parse((await stream.next()).data)).toMatchObject({ id: 0, result: { serverInfo: { name: 'conflux' } } });
      expect((await send({ jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);
      expect((await send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: 'via b' } } })).status).toBe(202);
      expect(JSON.parse((await stream.next()).data)).toEqual({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'alpha: via b' }] } });
      // Served where its stream is: the other replica never held a copy.
      expect(b.conflux.sessions.get(id)).toBeUndefined();
      // Not the stream's principal's wire: a Streamable HTTP request does not find it.
      expect((await post(b.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, id)).status).toBe(404);
      await stream.cancel();
      await waitFor(async () => (await store.record(id)) === undefined, 5000, 'the session to end with its stream');
      expect((await send({ jsonrpc: '2.0', id: 3, method: 'ping' })).status).toBe(404);
    });

    it('cancels a call running on one replica when the cancellation lands on the other', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const from = '127.0.0.9';
      const id = await initializeRaw(a.url, from);
      // A client that can be asked nothing: its calls take the plain path, outside the session's transport.
      const call = raw(a.url, { method: 'POST', body: { jsonrpc: '2.0', id: 'w1', method: 'tools/call', params: { name: 'alpha__work', arguments: {} } }, from, headers: { 'mcp-session-id': id, 'mcp-protocol-version': VERSION } });
      await waitFor(async () => (await callText(a.url, id, 1, 'alpha__work_status', {}, from)) === 'running', 5000, 'the work to start');
      const cancel = await post(b.url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'w1', reason: 'changed my mind' } }, id, from);
      expect(cancel.status).toBe(202);
      await waitFor(async () => (await callText(a.url, id, 2, 'alpha__work_status', {}, from)) === 'cancelled', 5000, 'the upstream to stop');
      expect((await call).status).toBe(200);
      expect((await deleteSession(b.url, id, from)).status).toBe(200);
    });

    it('resumes a GET stream on the other replica after the first one stopped, with what it missed and nothing else', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const uri = 'demo://alpha/static';
      const id = await initializeRaw(a.url, '127.0.0.7');
      expect((await post(a.url, { jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri } }, id)).status).toBe(200);
      const stream = await openStream(a.url, id);
      await waitFor(async () => (await store.record(id))?.streamHolder === a.conflux.state.replicaId, 5000, 'the first replica to hold the stream');
      expect(await callText(a.url, id, 2, 'alpha__touch', { uri })).toBe('notified');
      const seen = await stream.next();
      expect(seen.data).toEqual({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } });
      expect(seen.id).toBeDefined();

      // The first replica goes away (the load balancer stops sending it anything); its stream ends.
      proxy.targets.splice(0, 1);
      const ended = stream.ended();
      await a.stop();
      expect(await ended).toBe(true);
      expect((await store.record(id))?.streamHolder).toBeUndefined();

      // The session goes on through the other replica, which rebuilds it with its subscription.
      expect(await callText(proxy.url, id, 3, 'alpha__echo', { text: 'still here' })).toBe('alpha: still here');
      expect(b.conflux.sessions.get(id)?.origin).toBe('rebuilt');
      expect(await callText(proxy.url, id, 4, 'alpha__touch', { uri })).toBe('notified');
      const resumed = await openStream(proxy.url, id, seen.id);
      const missed = await resumed.next();
      expect(missed.data).toEqual({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } });
      await waitFor(async () => (await store.record(id))?.streamHolder === b.conflux.state.replicaId, 5000, 'the other replica to hold the stream');
      // Live again: the next update follows directly, so nothing else (no answer from a request's stream) was replayed before it.
      expect(await callText(proxy.url, id, 5, 'alpha__touch', { uri })).toBe('notified');
      expect((await resumed.next()).data).toEqual({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } });
      await resumed.cancel();
      expect((await deleteSession(proxy.url, id)).status).toBe(200);
    });
  });
}

describe('sessions while the shared state does not answer', () => {
  let state: SwitchableState;
  let replica: Replica;

  beforeAll(async () => {
    state = new SwitchableState(new MemorySharedState());
    replica = await startReplica(testConfig({ alpha: stdioFixture('alpha') }), state);
  });
  afterAll(async () => {
    await replica?.stop();
  });

  it('refuses new sessions and unknown ones with 503, serves the sessions it holds, and stays ready', async () => {
    const held = await initializeRaw(replica.url);
    state.down = true;
    try {
      const refused = await raw(replica.url, { method: 'POST', body: INITIALIZE });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('Session state unavailable') } });
      expect(await callText(replica.url, held, 1, 'alpha__echo', { text: 'served' })).toBe('alpha: served');
      // Through the session's transport, whose events cannot be stored: answered live all the same.
      const ping = await post(replica.url, { jsonrpc: '2.0', id: 4, method: 'ping' }, held);
      expect(ping.status).toBe(200);
      expect(sseEvents(await ping.text()).map((e) => JSON.parse(e.data) as unknown)).toEqual([{ jsonrpc: '2.0', id: 4, result: {} }]);
      const counted = await post(replica.url, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'alpha__count', arguments: { n: 2 }, _meta: { progressToken: 'p' } } }, held);
      expect(counted.status).toBe(200);
      const messages = sseEvents(await counted.text()).map((e) => JSON.parse(e.data) as { method?: string; id?: unknown; params?: { progress?: number } });
      expect(messages.filter((m) => m.method === 'notifications/progress').map((m) => m.params?.progress)).toEqual([1, 2]);
      expect(textOf((messages.find((m) => m.id === 5) as { result: object }).result)).toBe('alpha counted to 2');
      // Perhaps held by another replica: not a 404.
      const elsewhere = await post(replica.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, '00000000-0000-4000-8000-000000000000');
      expect(elsewhere.status).toBe(503);
      // The record cannot be removed: the DELETE fails (the client retries), and the session lives on.
      const deleted = await deleteSession(replica.url, held);
      expect(deleted.status).toBe(503);
      expect(await deleted.json()).toMatchObject({ error: { message: expect.stringContaining('Session state unavailable') } });
      expect(await callText(replica.url, held, 6, 'alpha__echo', { text: 'still' })).toBe('alpha: still');
      // Reported, but the sessions held here are served: the replica stays in the pool.
      const ready = await fetch(replica.url.replace(/\/mcp$/, '/ready'));
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ready: true, sessions: { backend: 'memory', state: 'unavailable' } });
    } finally {
      state.down = false;
    }
    expect((await fetch(replica.url.replace(/\/mcp$/, '/ready'))).status).toBe(200);
    expect((await post(replica.url, { jsonrpc: '2.0', id: 3, method: 'ping' }, '00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await deleteSession(replica.url, held)).status).toBe(200);
    expect(await state.sessions.get(held)).toBeUndefined();
  });
});

/** A shared state that can be made not to answer, as a Redis that is down. */
class SwitchableState implements SharedState {
  down = false;
  readonly backend = 'memory';
  readonly sessions: SharedState['sessions'];
  constructor(private readonly inner: SharedState) {
    const guard =
      <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
      (...args: A): Promise<R> =>
        this.down ? Promise.reject(new SharedStateUnavailableError('the store does not answer')) : call(...args);
    const s = inner.sessions;
    this.sessions = {
      claim: guard(s.claim.bind(s)),
      get: guard(s.get.bind(s)),
      touch: guard(s.touch.bind(s)),
      update: guard(s.update.bind(s)),
      addSubscription: guard(s.addSubscription.bind(s)),
      removeSubscription: guard(s.removeSubscription.bind(s)),
      remove: guard(s.remove.bind(s)),
      countFor: guard(s.countFor.bind(s)),
      count: guard(s.count.bind(s)),
    };
  }
  get replicaId() {
    return this.inner.replicaId;
  }
  get bus() {
    return this.inner.bus;
  }
  get leases() {
    return this.inner.leases;
  }
  eventsFor(id: string) {
    const events = this.inner.eventsFor(id);
    const guard =
      <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
      (...args: A): Promise<R> =>
        this.down ? Promise.reject(new SharedStateUnavailableError('the store does not answer')) : call(...args);
    return {
      storeEvent: guard(events.storeEvent.bind(events)),
      getStreamIdForEventId: guard(async (eventId: string) => events.getStreamIdForEventId?.(eventId)),
      replayEventsAfter: guard(events.replayEventsAfter.bind(events)),
      drop: guard(events.drop.bind(events)),
    };
  }
  async health(): Promise<'ok' | 'unavailable'> {
    return this.down ? 'unavailable' : 'ok';
  }
  close() {
    return this.inner.close();
  }
}

async function startReplica(config: Config, state: SharedState): Promise<Replica> {
  const conflux = createConflux(config, { logger: silentLogger(), state });
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  await conflux.upstreams.settled(15_000);
  let stopped: Promise<void> | undefined;
  return { conflux, url, stop: () => (stopped ??= conflux.stop()) };
}

interface Peer {
  client: Client;
  sessionId: string;
  updates: string[];
  listChanges: string[];
  close(): Promise<void>;
}

/** The SDK client, declaring sampling (answered as `ann`), collecting resource updates. */
async function connectPeer(url: string): Promise<Peer> {
  const client = new Client({ name: 'ann', version: '1.0.0' }, { capabilities: { sampling: {} } });
  const updates: string[] = [];
  client.setRequestHandler('sampling/createMessage', async (request) => {
    const question = (request.params.messages[0]!.content as { text: string }).text;
    return { role: 'assistant', model: 'test', content: { type: 'text', text: `ann answers ${question}` } };
  });
  client.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
  const listChanges: string[] = [];
  client.setNotificationHandler('notifications/tools/list_changed', () => void listChanges.push('tools'));
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
    client,
    sessionId: transport.sessionId!,
    updates,
    listChanges,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

function isCall(rpc: unknown, tool: string): boolean {
  return rpc !== null && typeof rpc === 'object' && (rpc as { method?: unknown }).method === 'tools/call' && (rpc as { params?: { name?: unknown } }).params?.name === tool;
}

interface Hit {
  target: number;
  method: string;
  session: string | undefined;
  rpc: unknown;
}

interface RoundRobinProxy {
  url: string;
  /** The replicas' URLs, in turn; a test takes one out as a load balancer would. */
  targets: string[];
  hits: Hit[];
  /** Picks the target of a request (by its JSON-RPC body) instead of the turn. */
  steer: ((rpc: unknown) => number | undefined) | undefined;
  onHit: ((hit: Hit) => void) | undefined;
  close(): Promise<void>;
}

/**
 * A load balancer without stickiness: each request goes to the next replica in turn. Bodies
 * stream back as they come (event streams included); a client leaving ends its upstream
 * request. Requests are sent from the client's own address, so rate keys stay per client.
 */
async function roundRobinProxy(targets: string[]): Promise<RoundRobinProxy> {
  let turn = 0;
  const proxy: RoundRobinProxy = { url: '', targets: [...targets], hits: [], steer: undefined, onHit: undefined, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let rpc: unknown;
      try {
        rpc = body.length > 0 ? JSON.parse(body.toString('utf8')) : undefined;
      } catch {
        rpc = undefined;
      }
      const steered = proxy.steer?.(rpc);
      const index = steered ?? turn++ % proxy.targets.length;
      const target = new URL(proxy.targets[index]!);
      const hit: Hit = { target: targets.indexOf(proxy.targets[index]!), method: req.method!, session: req.headers['mcp-session-id'] as string | undefined, rpc };
      proxy.hits.push(hit);
      proxy.onHit?.(hit);
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, localAddress: req.socket.remoteAddress },
        (answer) => {
          res.writeHead(answer.statusCode!, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  proxy.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

/** One HTTP request from `from` (a loopback address: each is its own client to the gateway). */
function raw(url: string, options: { method: string; body?: unknown; headers?: Record<string, string>; from?: string }): Promise<Response> {
  const target = new URL(url);
  const headers: Record<string, string> = { ...MCP_HEADERS, ...options.headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: options.method, headers, localAddress: options.from ?? '127.0.0.1' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(new Response(res.statusCode === 202 || res.statusCode === 204 ? null : Buffer.concat(chunks), { status: res.statusCode!, headers: toHeaders(res.headers) })));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body === undefined ? undefined : JSON.stringify(options.body));
  });
}

function toHeaders(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') out.set(name, value);
  return out;
}

/** Opens a session (initialize, then initialized) and returns its id. */
async function initializeRaw(url: string, from?: string): Promise<string> {
  const init = await raw(url, { method: 'POST', body: INITIALIZE, from });
  expect(init.status).toBe(200);
  const id = init.headers.get('mcp-session-id')!;
  expect((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, id, from)).status).toBe(202);
  return id;
}

function post(url: string, body: unknown, session: string, from?: string): Promise<Response> {
  return raw(url, { method: 'POST', body, from, headers: { 'mcp-session-id': session, 'mcp-protocol-version': VERSION } });
}

function deleteSession(url: string, session: string, from?: string): Promise<Response> {
  return raw(url, { method: 'DELETE', from, headers: { 'mcp-session-id': session, 'mcp-protocol-version': VERSION } });
}

/** A tool call's text, read from its SSE answer. */
async function callText(url: string, session: string, id: number, name: string, args: Record<string, unknown>, from?: string): Promise<string> {
  const response = await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, session, from);
  expect(response.status).toBe(200);
  const answer = sseEvents(await response.text())
    .map((e) => JSON.parse(e.data) as { id?: unknown; result?: object })
    .find((m) => m.id === id);
  expect(answer).toHaveProperty('result');
  return textOf(answer!.result!);
}

/** The events of an SSE body (priming events, which carry no data, left out). */
function sseEvents(text: string): { event: string | undefined; id: string | undefined; data: string }[] {
  const events: { event: string | undefined; id: string | undefined; data: string }[] = [];
  for (const block of text.split('\n\n')) {
    const field = (name: string) => block.split('\n').find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
    const data = field('data');
    if (data) events.push({ event: field('event'), id: field('id'), data });
  }
  return events;
}

/** A session's GET stream (resumed after `lastEventId` when given). */
async function openStream(url: string, session: string, lastEventId?: string) {
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': VERSION, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
  });
  const events = await eventReader(response);
  return { ...events, next: async () => {
    const event = await events.next();
    return { id: event.id, data: JSON.parse(event.data) as unknown };
  } };
}

/** An event stream, read event by event. */
async function eventReader(response: Response) {
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return {
    async next(): Promise<{ event: string | undefined; id: string | undefined; data: string }> {
      for (;;) {
        const boundary = buffer.indexOf('\n\n');
        if (boundary >= 0) {
          const block = buffer.slice(0, boundary + 2);
          buffer = buffer.slice(boundary + 2);
          const [event] = sseEvents(block);
          if (event) return event;
          continue;
        }
        const { done, value } = await reader.read();
        if (done) throw new Error('the stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    },
    /** Reads on until the gateway ends the stream; true then (false if it failed instead). */
    async ended(): Promise<boolean> {
      try {
        while (!(await reader.read()).done);
        return true;
      } catch {
        return false;
      }
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

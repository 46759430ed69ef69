import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { Redis, ReplyError } from 'ioredis';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { createSharedState } from '../../src/state/create-shared-state.js';
import { MemoryHub, MemorySessionStore, MemorySharedState } from '../../src/state/memory-state.js';
import { RedisSharedState } from '../../src/state/redis-state.js';
import { SharedStateUnavailableError, type ReplicaMessage, type SessionRecord, type SharedState } from '../../src/state/shared-state.js';
import { freePort, waitFor } from '../helpers/gateway.js';
import { redisTestKit, startRedisRelay, UNHURRIED_CALL_MS } from '../helpers/redis.js';

const { redis, closers, testPrefix, unansweringClient } = await redisTestKit();
const hasRedis = redis !== undefined;

/** `count` replicas sharing one backend, ready to exchange messages; closed (and their keys deleted) after the test. */
type Replicas = (count: number) => Promise<SharedState[]>;

const memoryReplicas: Replicas = async (count) => {
  const hub = new MemoryHub();
  const states = Array.from({ length: count }, () => new MemorySharedState(hub));
  closers.push(() => Promise.all(states.map((s) => s.close())).then(() => {}));
  return states;
};

function redisReplicas(options: { logger?: Logger; eventTtlMs?: number; prefix?: string } = {}): Replicas {
  return async (count) => {
    const prefix = options.prefix ?? testPrefix();
    const states = Array.from(
      { length: count },
      () => new RedisSharedState(redis!, { keyPrefix: prefix, logger: options.logger ?? silentLogger(), eventTtlMs: options.eventTtlMs, timeoutMs: UNHURRIED_CALL_MS }),
    );
    closers.push(() => Promise.all(states.map((s) => s.close())).then(() => {}));
    await Promise.all(states.map((s) => s.bus.subscribed()));
    return states;
  };
}

function record(rateKey: string, id: string = randomUUID()): SessionRecord {
  return {
    id,
    principal: 'alice',
    rateKey,
    wire: 'streamable-http',
    initialize: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1.0.0' } },
    subscriptions: [],
    createdAt: 1_750_000_000_123,
  };
}

const NO_LIMIT = { maxPerKey: 1000, maxTotal: 1000 };

/** Collects what a replica's bus delivers. */
function inbox(state: SharedState): { messages: { message: ReplicaMessage; from: string }[]; stop: () => void } {
  const messages: { message: ReplicaMessage; from: string }[] = [];
  const stop = state.bus.onMessage((message, from) => messages.push({ message, from }));
  closers.push(stop);
  return { messages, stop };
}

const closed = (session: string): ReplicaMessage => ({ kind: 'session-closed', session });

function notification(n: number): JSONRPCMessage {
  return { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `event ${n}` } };
}

/** The commands (each its arguments) in a chunk of RESP a client sent; enough for the few short commands of a test. */
function respCommands(chunk: Buffer): string[][] {
  const text = chunk.toString('latin1');
  const commands: string[][] = [];
  let at = 0;
  const line = () => {
    const end = text.indexOf('\r\n', at);
    const value = text.slice(at + 1, end);
    at = end + 2;
    return value;
  };
  while (at < text.length && text[at] === '*') {
    const args: string[] = [];
    for (let n = Number(line()); n > 0; n--) {
      const length = Number(line());
      args.push(text.slice(at, at + length));
      at += length + 2;
    }
    commands.push(args);
  }
  return commands;
}

describe.each([['memory', memoryReplicas], ...(hasRedis ? [['redis', redisReplicas()] as const] : [])] as [string, Replicas][])('shared state contract (%s)', (_kind, replicas) => {
  describe('sessions', () => {
    it('claims within the total and per-key limits, naming the limit that refused, whatever the rate key holds', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const limits = { maxPerKey: 2, maxTotal: 3 };
      const odd = 'principal:ä b/c:*?[x]\n';
      expect(await a.sessions.claim(record(odd), 60_000, limits)).toBe('ok');
      expect(await b.sessions.claim(record(odd), 60_000, limits)).toBe('ok');
      expect(await a.sessions.claim(record(odd), 60_000, limits)).toBe('per-key');
      expect(await b.sessions.claim(record('ip:::1'), 60_000, limits)).toBe('ok');
      expect(await a.sessions.claim(record('ip:10.0.0.1'), 60_000, limits)).toBe('total');
      // Both limits reached: the total is named.
      expect(await a.sessions.claim(record(odd), 60_000, limits)).toBe('total');
      expect(await b.sessions.countFor(odd)).toBe(2);
      expect(await a.sessions.countFor('ip:::1')).toBe(1);
      expect(await a.sessions.countFor('ip:10.0.0.1')).toBe(0);
      expect(await b.sessions.count()).toBe(3);
    });

    it('never lets concurrent claims from two replicas exceed a per-key limit', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).sessions.claim(record('principal:bob'), 60_000, { maxPerKey: 3, maxTotal: 1000 })));
      expect(outcomes.filter((o) => o === 'ok')).toHaveLength(3);
      expect(outcomes.filter((o) => o === 'per-key')).toHaveLength(17);
      expect(await a.sessions.countFor('principal:bob')).toBe(3);
    });

    it('forgets a session whose time ran out, and frees its quota place; a touched one lives on', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const expiring = record('principal:carol');
      const touched = record('principal:carol');
      expect(await a.sessions.claim(expiring, 1000, { maxPerKey: 2, maxTotal: 1000 })).toBe('ok');
      expect(await b.sessions.claim(touched, 1000, { maxPerKey: 2, maxTotal: 1000 })).toBe('ok');
      expect(await b.sessions.touch(touched.id, 60_000)).toBe(true);
      await waitFor(async () => (await b.sessions.get(expiring.id)) === undefined, 10_000, 'the untouched session to expire');
      expect(await a.sessions.get(touched.id)).toEqual(touched);
      expect(await a.sessions.touch(expiring.id, 60_000)).toBe(false);
      expect(await a.sessions.countFor('principal:carol')).toBe(1);
      expect(await b.sessions.count()).toBe(1);
      // The freed place can be taken again, and only once.
      expect(await a.sessions.claim(record('principal:carol'), 60_000, { maxPerKey: 2, maxTotal: 1000 })).toBe('ok');
      expect(await a.sessions.claim(record('principal:carol'), 60_000, { maxPerKey: 2, maxTotal: 1000 })).toBe('per-key');
    });

    it('updates a record from any replica, keeping what the patch does not name', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = record('principal:dave');
      await a.sessions.claim(session, 60_000, NO_LIMIT);
      // Concurrent changes of different fields from two replicas both land.
      await Promise.all([
        b.sessions.update(session.id, { logLevel: 'debug' }),
        a.sessions.update(session.id, { subscriptions: ['file:///a', 'file:///b'] }),
        b.sessions.update(session.id, { streamHolder: b.replicaId }),
      ]);
      expect(await a.sessions.get(session.id)).toEqual({ ...session, logLevel: 'debug', subscriptions: ['file:///a', 'file:///b'], streamHolder: b.replicaId });
      await a.sessions.update(session.id, { streamHolder: undefined, subscriptions: [] });
      const updated = await b.sessions.get(session.id);
      expect(updated).toEqual({ ...session, logLevel: 'debug' });
      expect(updated?.subscriptions).toEqual([]);
      expect(updated?.initialize.capabilities).toEqual({});
      // An update keeps the record's time to live (it still expires, and touch still finds it).
      expect(await b.sessions.touch(session.id, 60_000)).toBe(true);
      await b.sessions.update('no-such-session', { logLevel: 'error' });
      expect(await b.sessions.get('no-such-session')).toBeUndefined();
    });

    it('updates on a condition about the stream holder, judged with the write, and tells whether it applied', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = record('principal:gina');
      await a.sessions.claim(session, 60_000, NO_LIMIT);
      // Nobody holds the stream: a condition naming no holder applies, one naming a replica does not.
      expect(await a.sessions.update(session.id, { streamHolder: a.replicaId }, { ifStreamHolder: b.replicaId })).toBe(false);
      expect(await a.sessions.update(session.id, { streamHolder: a.replicaId }, { ifStreamHolder: null })).toBe(true);
      // B took the stream since A read the record: A's "clear it if it is still mine" leaves B's.
      expect(await b.sessions.update(session.id, { streamHolder: b.replicaId })).toBe(true);
      expect(await a.sessions.update(session.id, { streamHolder: undefined }, { ifStreamHolder: a.replicaId })).toBe(false);
      expect((await a.sessions.get(session.id))?.streamHolder).toBe(b.replicaId);
      expect(await b.sessions.update(session.id, { streamHolder: undefined }, { ifStreamHolder: b.replicaId })).toBe(true);
      expect(await a.sessions.get(session.id)).toEqual(session);
      // An unconditional update applies to any live record; nothing applies to one that is gone.
      expect(await a.sessions.update(session.id, { logLevel: 'info' }, {})).toBe(true);
      expect(await a.sessions.update('no-such-session', { logLevel: 'info' })).toBe(false);
      expect(await a.sessions.update('no-such-session', { streamHolder: undefined }, { ifStreamHolder: null })).toBe(false);
    });

    it('never lets a conditional clear of the stream holder undo a concurrent take-over', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = record('principal:hank');
      await a.sessions.claim(session, 60_000, NO_LIMIT);
      for (let round = 0; round < 20; round++) {
        await a.sessions.update(session.id, { streamHolder: a.replicaId });
        // Whichever lands first, B holds the stream after both.
        await Promise.all([a.sessions.update(session.id, { streamHolder: undefined }, { ifStreamHolder: a.replicaId }), b.sessions.update(session.id, { streamHolder: b.replicaId })]);
        expect((await a.sessions.get(session.id))?.streamHolder).toBe(b.replicaId);
      }
    });

    it('removes a record and its quota places on any replica, once', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = record('principal:erin');
      expect(await a.sessions.claim(session, 60_000, { maxPerKey: 1, maxTotal: 1000 })).toBe('ok');
      expect(await b.sessions.remove(session.id)).toBe(true);
      expect(await a.sessions.remove(session.id)).toBe(false);
      expect(await a.sessions.get(session.id)).toBeUndefined();
      expect(await a.sessions.touch(session.id, 60_000)).toBe(false);
      expect(await a.sessions.countFor('principal:erin')).toBe(0);
      expect(await a.sessions.count()).toBe(0);
      expect(await b.sessions.claim(record('principal:erin'), 60_000, { maxPerKey: 1, maxTotal: 1000 })).toBe('ok');
    });
  });

  describe('bus', () => {
    it('sends a message to the one replica addressed', async () => {
      const [a, b, c] = (await replicas(3)) as [SharedState, SharedState, SharedState];
      const [toA, toB, toC] = [inbox(a), inbox(b), inbox(c)];
      const message: ReplicaMessage = { kind: 'to-client', session: 's1', message: { jsonrpc: '2.0', id: 7, result: { content: [], isError: false } } };
      await a.bus.send(b.replicaId, message);
      await waitFor(() => toB.messages.length > 0, 10_000, 'the message to reach b');
      expect(toB.messages).toEqual([{ message, from: a.replicaId }]);
      // Sent after the first one: had the first reached a or c, it would be there before these.
      await b.bus.send(a.replicaId, closed('marker-a'));
      await b.bus.send(c.replicaId, closed('marker-c'));
      await waitFor(() => toA.messages.length > 0 && toC.messages.length > 0, 10_000, 'the markers');
      expect(toA.messages).toEqual([{ message: closed('marker-a'), from: b.replicaId }]);
      expect(toC.messages).toEqual([{ message: closed('marker-c'), from: b.replicaId }]);
    });

    it('broadcasts to every other replica, not back to the sender; an unsubscribed handler hears nothing', async () => {
      const [a, b, c] = (await replicas(3)) as [SharedState, SharedState, SharedState];
      const [toA, toB, toC] = [inbox(a), inbox(b), inbox(c)];
      const gone = inbox(c);
      gone.stop();
      const message: ReplicaMessage = { kind: 'config-changed', what: 'servers', detail: 'github' };
      await a.bus.broadcast(message);
      await waitFor(() => toB.messages.length > 0 && toC.messages.length > 0, 10_000, 'the broadcast to reach b and c');
      expect(toB.messages).toEqual([{ message, from: a.replicaId }]);
      expect(toC.messages).toEqual([{ message, from: a.replicaId }]);
      await b.bus.send(a.replicaId, closed('marker'));
      await waitFor(() => toA.messages.length > 0, 10_000, 'the marker');
      expect(toA.messages).toEqual([{ message: closed('marker'), from: b.replicaId }]);
      expect(gone.messages).toEqual([]);
    });
  });

  describe('events', () => {
    it('replays on one replica what another stored: after the given event, on its stream only, without priming events', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = randomUUID();
      const onA = a.eventsFor(session);
      const prime = await onA.storeEvent('s1', {} as JSONRPCMessage);
      await onA.storeEvent('s2', {} as JSONRPCMessage);
      const first = await onA.storeEvent('s1', notification(1));
      await onA.storeEvent('s2', notification(2));
      const second = await onA.storeEvent('s1', notification(3));
      await onA.storeEvent('s1', {} as JSONRPCMessage);
      const third = await b.eventsFor(session).storeEvent('s1', notification(4));
      expect(new Set([prime, first, second, third]).size).toBe(4);

      const onB = b.eventsFor(session);
      expect(await onB.getStreamIdForEventId!(first)).toBe('s1');
      const replayed: [string, JSONRPCMessage][] = [];
      expect(await onB.replayEventsAfter(prime, { send: async (id, message) => void replayed.push([id, message]) })).toBe('s1');
      expect(replayed).toEqual([
        [first, notification(1)],
        [second, notification(3)],
        [third, notification(4)],
      ]);
      replayed.length = 0;
      await a.eventsFor(session).replayEventsAfter(second, { send: async (id, message) => void replayed.push([id, message]) });
      expect(replayed).toEqual([[third, notification(4)]]);
    });

    it('gives event ids unique across replicas storing at once', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = randomUUID();
      const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).eventsFor(session).storeEvent('s', notification(i))));
      expect(new Set(ids).size).toBe(40);
    });

    it('refuses to resume from an event it does not know', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = randomUUID();
      const known = await a.eventsFor(session).storeEvent('s1', notification(1));
      const events = b.eventsFor(session);
      // Entry ids past Redis' 64-bit range, or written with leading zeros, name no event either.
      const outOfRange = ['18446744073709551616-0.s1', '1-18446744073709551616.s1', `${'9'.repeat(400)}-0.s1`, `0${known}`, ...(known.includes('-') ? [known.replace('-', '-0')] : [])];
      for (const unknown of ['', 'nope', `${known}x`, `9${known}`, ...outOfRange]) {
        expect(await events.getStreamIdForEventId!(unknown)).toBeUndefined();
        await expect(events.replayEventsAfter(unknown, { send: async () => {} })).rejects.toThrow(/unknown or too old/);
      }
      // Another session's events are not this one's.
      await expect(b.eventsFor(randomUUID()).replayEventsAfter(known, { send: async () => {} })).rejects.toThrow(/unknown or too old/);
    });

    it('keeps the newest 100 events of a session', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const session = randomUUID();
      const ids: string[] = [];
      for (let i = 0; i < 105; i++) ids.push(await a.eventsFor(session).storeEvent('s', notification(i)));
      const events = b.eventsFor(session);
      for (const trimmed of ids.slice(0, 5)) await expect(events.replayEventsAfter(trimmed, { send: async () => {} })).rejects.toThrow(/unknown or too old/);
      const replayed: string[] = [];
      await events.replayEventsAfter(ids[5]!, { send: async (id) => void replayed.push(id) });
      expect(replayed).toEqual(ids.slice(6));
    });

    it('drops the events of one session, not of others', async () => {
      const [a, b] = (await replicas(2)) as [SharedState, SharedState];
      const [ended, other] = [randomUUID(), randomUUID()];
      const endedId = await a.eventsFor(ended).storeEvent('s', notification(1));
      const otherId = await a.eventsFor(other).storeEvent('s', notification(2));
      await b.eventsFor(ended).drop();
      expect(await a.eventsFor(ended).getStreamIdForEventId!(endedId)).toBeUndefined();
      await expect(a.eventsFor(ended).replayEventsAfter(endedId, { send: async () => {} })).rejects.toThrow(/unknown or too old/);
      expect(await b.eventsFor(other).getStreamIdForEventId!(otherId)).toBe('s');
    });
  });

  it('reports itself healthy', async () => {
    const [a] = (await replicas(1)) as [SharedState];
    expect(await a.health()).toBe('ok');
  });
});

describe('createSharedState', () => {
  it('keeps state in memory without Redis, in Redis with it', async () => {
    const memory = createSharedState(undefined, { logger: silentLogger() });
    expect(memory).toBeInstanceOf(MemorySharedState);
    expect(memory.backend).toBe('memory');
    await memory.close();
    if (!hasRedis) return;
    const shared = createSharedState(redis, { logger: silentLogger(), keyPrefix: testPrefix() });
    closers.push(() => shared.close());
    expect(shared).toBeInstanceOf(RedisSharedState);
    expect(shared.backend).toBe('redis');
  });
});

describe('memory state, as Redis behaves', () => {
  it('does not remove a record whose time ran out before anything swept it', async () => {
    let now = 1_000_000;
    const store = new MemorySessionStore(() => now);
    const [expired, live] = [record('principal:ivy'), record('principal:ivy')];
    expect(await store.claim(expired, 1000, NO_LIMIT)).toBe('ok');
    expect(await store.claim(live, 5000, NO_LIMIT)).toBe('ok');
    now += 1000;
    // Redis expired the key: its REMOVE finds nothing.
    expect(await store.remove(expired.id)).toBe(false);
    expect(await store.remove(live.id)).toBe(true);
    expect(await store.remove(live.id)).toBe(false);
    expect(await store.count()).toBe(0);
  });

  it('delivers nothing to a handler removed between the send and the delivery', async () => {
    const hub = new MemoryHub();
    const [sender, receiver] = [new MemorySharedState(hub), new MemorySharedState(hub)];
    const staying: ReplicaMessage[] = [];
    const leaving: ReplicaMessage[] = [];
    receiver.bus.onMessage((message) => staying.push(message));
    const stop = receiver.bus.onMessage((message) => leaving.push(message));
    const sent = [sender.bus.broadcast(closed('broadcast')), sender.bus.send(receiver.replicaId, closed('direct'))];
    stop();
    await Promise.all(sent);
    // Deliveries are queued as microtasks at the send: by now the staying handler has had both.
    await new Promise((resolve) => setImmediate(resolve));
    expect(staying).toEqual([closed('broadcast'), closed('direct')]);
    expect(leaving).toEqual([]);
  });
});

if (hasRedis) describe('Redis shared state', () => {
  type Line = { level: number; msg: string; channel?: string };
  function capture(): { logger: Logger; lines: Line[] } {
    const lines: Line[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Line);
        done();
      },
    });
    return { logger: pino({ level: 'debug' }, sink), lines };
  }

  it('drops what is published on its channels without fitting the replica message schema', async () => {
    const prefix = testPrefix();
    const { logger, lines } = capture();
    const [a, b] = (await redisReplicas({ logger, prefix })(2)) as [RedisSharedState, RedisSharedState];
    const toB = inbox(b);
    const channel = `${prefix}replica:${b.replicaId}`;
    const invalid = [
      'not json',
      JSON.stringify({ from: a.replicaId }),
      JSON.stringify({ from: a.replicaId, message: { kind: 'no-such-kind', session: 's' } }),
      JSON.stringify({ from: a.replicaId, message: { kind: 'to-client', session: 's', message: { hello: 'world' } } }),
      JSON.stringify({ from: a.replicaId, message: { kind: 'config-changed', what: 'everything' } }),
    ];
    for (const raw of invalid) await redis!.publish(channel, raw);
    await redis!.publish(`${prefix}all`, 'not json either');
    const valid: ReplicaMessage = { kind: 'from-client', session: 's', message: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 3 } } };
    await redis!.publish(channel, JSON.stringify({ from: a.replicaId, message: valid }));
    const dropped = () => lines.filter((l) => l.msg === 'dropped an invalid replica message');
    // b receives its channel in publication order, so the valid message comes after every invalid one; a hears only `all`.
    await waitFor(() => toB.messages.length > 0 && dropped().length === invalid.length + 2, 10_000, 'the valid message and the drops');
    expect(toB.messages).toEqual([{ message: valid, from: a.replicaId }]);
    expect(dropped().filter((l) => l.channel === channel)).toHaveLength(invalid.length);
    expect(dropped().filter((l) => l.channel === `${prefix}all`)).toHaveLength(2);
    expect(dropped().every((l) => l.level === 20)).toBe(true);
  });

  it('subscribes again when its bus connection is cut', async () => {
    const [a, b] = (await redisReplicas()(2)) as [RedisSharedState, RedisSharedState];
    const toB = inbox(b);
    const name = `conflux-bus-${b.replicaId}`;
    const busConnection = async () => (String(await redis!.client('LIST')).split('\n').find((line) => line.includes(`name=${name} `)) ?? '').match(/^id=(\d+)/)?.[1];
    const before = await busConnection();
    expect(before).toBeDefined();
    await redis!.client('KILL', 'ID', before!);
    // Messages published while it reconnects are lost (pub/sub keeps nothing): send until one arrives.
    let sent = 0;
    await waitFor(
      async () => {
        if (toB.messages.length > 0) return true;
        await a.bus.send(b.replicaId, closed(`after-${sent++}`));
        return false;
      },
      10_000,
      'a message through the new connection',
    );
    const after = await busConnection();
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(toB.messages[0]?.from).toBe(a.replicaId);
  });

  it('receives messages once Redis comes up after the start', async () => {
    const prefix = testPrefix();
    const port = await freePort();
    const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 2, retryStrategy: () => 50 });
    let errors = 0;
    client.on('error', () => errors++);
    closers.push(() => client.disconnect());
    const late = new RedisSharedState(client, { keyPrefix: prefix, logger: silentLogger(), timeoutMs: UNHURRIED_CALL_MS });
    closers.push(() => late.close());
    const toLate = inbox(late);
    // Long enough down for a subscription queued at start to have been dropped by the client's retries.
    await waitFor(() => errors >= 6, 10_000, 'failed connection attempts');
    // Redis appears on the port: a TCP relay to the test Redis.
    const relay = await startRedisRelay({ port });
    closers.push(() => relay.close());
    let subscribed = false;
    void late.bus.subscribed().then(() => (subscribed = true));
    await waitFor(() => subscribed, 10_000, 'the bus to subscribe');
    const [sender] = (await redisReplicas({ prefix })(1)) as [RedisSharedState];
    await sender.bus.send(late.replicaId, closed('s'));
    await waitFor(() => toLate.messages.length > 0, 10_000, 'the message');
    expect(toLate.messages).toEqual([{ message: closed('s'), from: sender.replicaId }]);
    expect(await late.health()).toBe('ok');
  });

  it("expires a session's events eventTtlMs after the last one stored", async () => {
    const prefix = testPrefix();
    const [a] = (await redisReplicas({ prefix, eventTtlMs: 1000 })(1)) as [RedisSharedState];
    const session = randomUUID();
    const id = await a.eventsFor(session).storeEvent('s', notification(1));
    const ttl = await redis!.pttl(`${prefix}events:${session}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);
    await waitFor(async () => (await a.eventsFor(session).getStreamIdForEventId!(id)) === undefined, 10_000, 'the events to expire');
    await expect(a.eventsFor(session).replayEventsAfter(id, { send: async () => {} })).rejects.toThrow(/unknown or too old/);
  });

  it('passes on an error Redis answers with as it is: Redis answered, so it is not unavailable', async () => {
    const prefix = testPrefix();
    const [a] = (await redisReplicas({ prefix })(1)) as [RedisSharedState];
    const [id, session] = [randomUUID(), randomUUID()];
    // Keys of the wrong type: anything with access to Redis could have written them.
    await redis!.set(`${prefix}session:${id}`, 'a string, not a hash');
    await redis!.set(`${prefix}events:${session}`, 'a string, not a stream');
    for (const call of [() => a.sessions.get(id), () => a.sessions.touch(id, 60_000), () => a.eventsFor(session).storeEvent('s', notification(1))]) {
      const error = (await call().then(
        () => undefined,
        (reason: unknown) => reason,
      )) as Error;
      expect(error).toBeInstanceOf(ReplyError);
      expect(error).not.toBeInstanceOf(SharedStateUnavailableError);
      expect(error.message).toMatch(/^WRONGTYPE/);
    }
    expect(await a.health()).toBe('ok');
  });

  it('takes an answer that Redis cannot serve now (still loading) as unavailable', async () => {
    // A server answering every command as a Redis loading its data does (the client's own setup aside).
    const loading = createServer((socket) =>
      socket.on('data', (chunk: Buffer) => {
        for (const [name] of respCommands(chunk)) socket.write(name?.toLowerCase() === 'client' ? '+OK\r\n' : '-LOADING Redis is loading the dataset in memory\r\n');
      }),
    );
    await new Promise<void>((resolve) => loading.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => loading.close(() => resolve())));
    const client = new Redis({ host: '127.0.0.1', port: (loading.address() as AddressInfo).port, enableReadyCheck: false, maxRetriesPerRequest: 2 });
    client.on('error', () => {});
    closers.push(() => client.disconnect());
    const state = new RedisSharedState(client, { logger: silentLogger(), timeoutMs: UNHURRIED_CALL_MS });
    closers.push(() => state.close());
    const error = (await state.sessions.get('s').then(
      () => undefined,
      (reason: unknown) => reason,
    )) as Error;
    expect(error).toBeInstanceOf(SharedStateUnavailableError);
    expect(error.message).toBe('Redis did not answer session read (LOADING Redis is loading the dataset in memory)');
  });

  it('gives up the places of a claim that did not answer in time, once Redis has run it', async () => {
    const prefix = testPrefix();
    const relay = await startRedisRelay({ delayMs: 700 });
    closers.push(() => relay.close());
    const client = new Redis({ host: '127.0.0.1', port: relay.port, maxRetriesPerRequest: 2 });
    client.on('error', () => {});
    closers.push(() => client.disconnect());
    await client.ping(); // connected and ready, through the relay
    const slow = new RedisSharedState(client, { keyPrefix: prefix, logger: silentLogger() }); // the default bound: 500 ms
    closers.push(() => slow.close());
    const [fast] = (await redisReplicas({ prefix })(1)) as [RedisSharedState];
    const limits = { maxPerKey: 1, maxTotal: 1000 };
    const session = record('principal:jack');
    await expect(slow.sessions.claim(session, 60_000, limits)).rejects.toThrow(new SharedStateUnavailableError('Redis did not answer session claim (no answer within 500 ms)'));
    // The claim ran in Redis all the same; once its late answer arrives, its record and quota place go.
    await waitFor(async () => (await fast.sessions.countFor('principal:jack')) === 0 && (await fast.sessions.get(session.id)) === undefined, 10_000, 'the late claim to be undone');
    expect(await redis!.exists(`${prefix}session:${session.id}`)).toBe(0);
    // The client retrying once Redis is quick again finds its place free.
    expect(await fast.sessions.claim(record('principal:jack'), 60_000, limits)).toBe('ok');
  });

  describe('when Redis does not answer', () => {
    async function everyCallRejects(state: RedisSharedState): Promise<void> {
      const events = state.eventsFor('s');
      const calls: [string, () => Promise<unknown>][] = [
        ['session claim', () => state.sessions.claim(record('k'), 60_000, NO_LIMIT)],
        ['session read', () => state.sessions.get('s')],
        ['session touch', () => state.sessions.touch('s', 60_000)],
        ['session update', () => state.sessions.update('s', { logLevel: 'debug' })],
        ['session remove', () => state.sessions.remove('s')],
        ['session count', () => state.sessions.countFor('k')],
        ['session count', () => state.sessions.count()],
        ['replica message publish', () => state.bus.send('other', closed('s'))],
        ['replica message publish', () => state.bus.broadcast(closed('s'))],
        ['event store', () => events.storeEvent('stream', notification(1))],
        ['event lookup', () => events.getStreamIdForEventId!('1-0.stream')],
        ['event replay', () => events.replayEventsAfter('1-0.stream', { send: async () => {} })],
        ['event drop', () => events.drop()],
      ];
      const outcomes = await Promise.allSettled(calls.map(([, call]) => call()));
      outcomes.forEach((outcome, i) => {
        expect(outcome.status).toBe('rejected');
        const reason = (outcome as PromiseRejectedResult).reason as Error;
        expect(reason).toBeInstanceOf(SharedStateUnavailableError);
        expect(reason.message).toContain(`Redis did not answer ${calls[i]![0]}`);
      });
      expect(await state.health()).toBe('unavailable');
    }

    it('rejects every call with SharedStateUnavailableError on a Redis that accepts and never answers, and closes', async () => {
      const client = await unansweringClient();
      const state = new RedisSharedState(client, { logger: silentLogger(), timeoutMs: 200 });
      await everyCallRejects(state);
      await state.close();
    });

    it('rejects every call with SharedStateUnavailableError on a closed port, and closes', async () => {
      const client = new Redis({ host: '127.0.0.1', port: await freePort(), maxRetriesPerRequest: 2 });
      client.on('error', () => {});
      closers.push(() => client.disconnect());
      const state = new RedisSharedState(client, { logger: silentLogger(), timeoutMs: 200 });
      await everyCallRejects(state);
      await state.close();
    });

    it('refuses calls without sending them once too many wait for a hung Redis', async () => {
      const client = await unansweringClient();
      const state = new RedisSharedState(client, { logger: silentLogger(), timeoutMs: 200, maxPendingCalls: 3 });
      closers.push(() => state.close());
      const waiting = await Promise.allSettled([1, 2, 3].map(() => state.sessions.count()));
      expect(waiting.map((w) => ((w as PromiseRejectedResult).reason as Error).message)).toEqual(Array(3).fill('Redis did not answer session count (no answer within 200 ms)'));
      // The three commands still wait in the client: the fourth call is refused at once.
      await expect(state.sessions.get('s')).rejects.toThrow('Redis did not answer session read: 3 earlier calls are still waiting');
      expect(await state.health()).toBe('unavailable');
    });
  });
});

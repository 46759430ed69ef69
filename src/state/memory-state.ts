import { randomUUID } from 'node:crypto';
import type { EventStore } from '@modelcontextprotocol/server';
import { SessionEventStore } from '../gateway/session-event-store.js';
import { leaseHolder, leaseValue, meetsCondition, type LeaseStore, type ReplicaBus, type ReplicaMessage, type SessionRecord, type SessionRecordCondition, type SessionRecordPatch, type SessionStore, type SharedState } from './shared-state.js';

type Handler = (message: ReplicaMessage, from: string) => void;

/**
 * What in-memory replicas share: one process's state, which several gateways in that process
 * (tests, or `MemorySharedState` alone for one gateway) see as Redis-backed replicas see theirs.
 */
export class MemoryHub {
  readonly sessions: MemorySessionStore;
  readonly events = new Map<string, SessionEventStore>();
  readonly #replicas = new Map<string, Set<Handler>>();
  readonly #leases = new Map<string, { holder: string; expiresAt: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.sessions = new MemorySessionStore(now);
  }

  /** Drops a lease whoever holds it, as a store that fails over without its keys does. */
  dropLease(name: string): void {
    this.#leases.delete(name);
  }

  /** The leases as one replica sees them. */
  leasesFor(replicaId: string): LeaseStore {
    const leases = this.#leases;
    const live = (name: string) => {
      const lease = leases.get(name);
      if (lease && lease.expiresAt <= this.#now()) leases.delete(name);
      return leases.get(name);
    };
    return {
      acquire: async (name, ttlMs, keeper) => {
        const lease = live(name);
        const value = leaseValue(replicaId, keeper);
        if (lease && lease.holder !== value) return false;
        leases.set(name, { holder: value, expiresAt: this.#now() + ttlMs });
        return true;
      },
      holder: async (name) => {
        const lease = live(name);
        return lease && leaseHolder(lease.holder);
      },
      release: async (name, keeper) => {
        if (live(name)?.holder === leaseValue(replicaId, keeper)) leases.delete(name);
      },
    };
  }

  /** The bus of one replica: messages go to the others' handlers, asynchronously as over a network. */
  busFor(replicaId: string): ReplicaBus {
    const replicas = this.#replicas;
    const deliver = (to: string, message: ReplicaMessage): boolean => {
      const copy = structuredClone(message);
      const listening = (replicas.get(to)?.size ?? 0) > 0;
      // Judged again on delivery: a handler removed after the send hears nothing, as on Redis.
      for (const handler of replicas.get(to) ?? []) {
        queueMicrotask(() => {
          if (replicas.get(to)?.has(handler)) handler(copy, replicaId);
        });
      }
      return listening;
    };
    return {
      send: async (replica, message) => deliver(replica, message),
      broadcast: async (message) => {
        for (const id of replicas.keys()) if (id !== replicaId) deliver(id, message);
      },
      onMessage: (handler) => {
        let handlers = replicas.get(replicaId);
        if (!handlers) replicas.set(replicaId, (handlers = new Set()));
        handlers.add(handler);
        return () => {
          handlers.delete(handler);
          if (handlers.size === 0) replicas.delete(replicaId);
        };
      },
    };
  }
}

/** State in this process: on its own hub (one gateway, the default), or on a hub other in-process replicas share. */
export class MemorySharedState implements SharedState {
  readonly backend = 'memory';
  readonly replicaId = randomUUID();
  readonly sessions: SessionStore;
  readonly bus: ReplicaBus;
  readonly leases: LeaseStore;
  readonly #hub: MemoryHub;

  constructor(hub: MemoryHub = new MemoryHub()) {
    this.#hub = hub;
    this.sessions = hub.sessions;
    this.bus = hub.busFor(this.replicaId);
    this.leases = hub.leasesFor(this.replicaId);
  }

  eventsFor(sessionId: string): EventStore & { drop(): Promise<void> } {
    const events = this.#hub.events;
    let store = events.get(sessionId);
    if (!store) events.set(sessionId, (store = new SessionEventStore()));
    const own = store;
    return {
      storeEvent: (streamId, message) => own.storeEvent(streamId, message),
      getStreamIdForEventId: (eventId) => own.getStreamIdForEventId(eventId),
      replayEventsAfter: (lastEventId, sender) => own.replayEventsAfter(lastEventId, sender),
      drop: async () => {
        if (events.get(sessionId) === own) events.delete(sessionId);
      },
    };
  }

  async health(): Promise<'ok'> {
    return 'ok';
  }

  async close(): Promise<void> {}
}

export class MemorySessionStore implements SessionStore {
  readonly #records = new Map<string, { record: SessionRecord; expiresAt: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async claim(record: SessionRecord, ttlMs: number, limits: { maxPerKey: number; maxTotal: number }): Promise<'ok' | 'per-key' | 'total'> {
    this.#sweep();
    if (this.#records.size >= limits.maxTotal) return 'total';
    if (this.#countFor(record.rateKey) >= limits.maxPerKey) return 'per-key';
    this.#records.set(record.id, { record: structuredClone(record), expiresAt: this.#now() + ttlMs });
    return 'ok';
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const entry = this.#live(id);
    return entry && structuredClone(entry.record);
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    const entry = this.#live(id);
    if (!entry) return false;
    entry.expiresAt = this.#now() + ttlMs;
    return true;
  }

  async update(id: string, patch: SessionRecordPatch, condition: SessionRecordCondition = {}): Promise<boolean> {
    const entry = this.#live(id);
    if (!entry || !meetsCondition(entry.record, condition)) return false;
    entry.record = { ...entry.record, ...structuredClone(patch) };
    return true;
  }

  async addSubscription(id: string, uri: string): Promise<boolean> {
    const entry = this.#live(id);
    if (!entry || entry.record.subscriptions.includes(uri)) return false;
    entry.record = { ...entry.record, subscriptions: [...entry.record.subscriptions, uri] };
    return true;
  }

  async removeSubscription(id: string, uri: string): Promise<boolean> {
    const entry = this.#live(id);
    if (!entry || !entry.record.subscriptions.includes(uri)) return false;
    entry.record = { ...entry.record, subscriptions: entry.record.subscriptions.filter((u) => u !== uri) };
    return true;
  }

  /** False for a record whose time ran out, swept or not, as Redis (which expired its key) answers. */
  async remove(id: string): Promise<boolean> {
    return this.#live(id) !== undefined && this.#records.delete(id);
  }

  async countFor(rateKey: string): Promise<number> {
    this.#sweep();
    return this.#countFor(rateKey);
  }

  async count(): Promise<number> {
    this.#sweep();
    return this.#records.size;
  }

  #countFor(rateKey: string): number {
    let n = 0;
    for (const { record } of this.#records.values()) if (record.rateKey === rateKey) n++;
    return n;
  }

  #live(id: string): { record: SessionRecord; expiresAt: number } | undefined {
    const entry = this.#records.get(id);
    if (entry && entry.expiresAt <= this.#now()) {
      this.#records.delete(id);
      return undefined;
    }
    return entry;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#records) if (entry.expiresAt <= now) this.#records.delete(id);
  }
}

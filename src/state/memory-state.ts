import { randomUUID } from 'node:crypto';
import type { EventStore } from '@modelcontextprotocol/server';
import { SessionEventStore } from '../gateway/session-event-store.js';
import type { ReplicaBus, SessionRecord, SessionRecordPatch, SessionStore, SharedState } from './shared-state.js';

/** One process's state: nothing is shared, so the bus reaches no one. */
export class MemorySharedState implements SharedState {
  readonly backend = 'memory';
  readonly replicaId = randomUUID();
  readonly sessions = new MemorySessionStore();
  readonly bus: ReplicaBus = {
    send: async () => {},
    broadcast: async () => {},
    onMessage: () => () => {},
  };
  readonly #events = new Map<string, SessionEventStore>();

  eventsFor(sessionId: string): EventStore & { drop(): Promise<void> } {
    let store = this.#events.get(sessionId);
    if (!store) this.#events.set(sessionId, (store = new SessionEventStore()));
    const events = this.#events;
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

  async close(): Promise<void> {
    this.#events.clear();
  }
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

  async update(id: string, patch: SessionRecordPatch): Promise<void> {
    const entry = this.#live(id);
    if (entry) entry.record = { ...entry.record, ...structuredClone(patch) };
  }

  async remove(id: string): Promise<boolean> {
    return this.#records.delete(id);
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


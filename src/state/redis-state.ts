import { randomUUID } from 'node:crypto';
import type { EventStore } from '@modelcontextprotocol/server';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { BoundedCalls } from './bounded.js';
import { RedisBus } from './redis-bus.js';
import { RedisEventStore } from './redis-event-store.js';
import { RedisLeaseStore } from './redis-lease-store.js';
import { RedisSessionStore } from './redis-session-store.js';
import type { SharedState } from './shared-state.js';

export interface RedisSharedStateOptions {
  /** Prefix of every key and channel, so deployments and tests can share one Redis. Default `conflux:`. */
  keyPrefix?: string | undefined;
  /** Longest wait for one call; beyond it the call rejects with `SharedStateUnavailableError`. Default 500. */
  timeoutMs?: number | undefined;
  /** How long a session's events are kept after the last one stored. Default one hour. */
  eventTtlMs?: number | undefined;
  /** Calls that may wait for Redis at once; beyond, calls are refused without being sent. Default 2000. */
  maxPendingCalls?: number | undefined;
  logger: Logger;
}

const DEFAULT_TIMEOUT_MS = 500;
const DEFAULT_EVENT_TTL_MS = 60 * 60 * 1000;
/** Far above what a healthy Redis (answering in a millisecond) ever has waiting; reached only when it hangs. */
const DEFAULT_MAX_PENDING_CALLS = 2000;

/**
 * State shared by every replica through Redis: session records and quotas (Lua scripts, one
 * round trip each), the replica bus (pub/sub on a connection of its own) and the sessions' SSE
 * events (one stream per session).
 *
 * The client belongs to the caller, who closes it; `close()` ends only the bus connection.
 * Every call is bounded by `timeoutMs`, so a Redis that is down or hangs makes calls fail with
 * `SharedStateUnavailableError`, never wait.
 */
export class RedisSharedState implements SharedState {
  readonly backend = 'redis';
  readonly replicaId = randomUUID();
  readonly sessions: RedisSessionStore;
  readonly bus: RedisBus;
  readonly leases: RedisLeaseStore;
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #eventTtlMs: number;
  readonly #bounded: BoundedCalls;
  readonly #logger: Logger;

  constructor(redis: Redis, options: RedisSharedStateOptions) {
    this.#redis = redis;
    this.#prefix = options.keyPrefix ?? 'conflux:';
    this.#eventTtlMs = options.eventTtlMs ?? DEFAULT_EVENT_TTL_MS;
    this.#bounded = new BoundedCalls(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.maxPendingCalls ?? DEFAULT_MAX_PENDING_CALLS);
    this.#logger = options.logger;
    const shared = { prefix: this.#prefix, bounded: this.#bounded, logger: this.#logger };
    this.sessions = new RedisSessionStore(redis, shared);
    this.bus = new RedisBus(redis, { ...shared, replicaId: this.replicaId });
    this.leases = new RedisLeaseStore(redis, { ...shared, replicaId: this.replicaId });
  }

  eventsFor(sessionId: string): EventStore & { drop(): Promise<void> } {
    return new RedisEventStore(this.#redis, {
      key: `${this.#prefix}events:${sessionId}`,
      ttlMs: this.#eventTtlMs,
      bounded: this.#bounded,
      logger: this.#logger,
    });
  }

  async health(): Promise<'ok' | 'unavailable'> {
    try {
      await this.#bounded.run('ping', () => this.#redis.ping());
      return 'ok';
    } catch {
      return 'unavailable';
    }
  }

  async close(): Promise<void> {
    this.bus.close();
  }
}

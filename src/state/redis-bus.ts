import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BoundedCalls } from './bounded.js';
import type { ReplicaBus, ReplicaMessage } from './shared-state.js';
import { BusPayloadSchema, type BusPayload } from './state-schemas.js';

type Handler = (message: ReplicaMessage, from: string) => void;

/**
 * Replica messages over Redis pub/sub: `<prefix>replica:<id>` for one replica, `<prefix>all` for
 * every one. Pub/sub keeps nothing: a message to a replica that is gone (or reconnecting) is lost,
 * which the contract allows.
 *
 * A subscribed connection can do nothing else, so the bus has its own, a duplicate of the
 * caller's client, which it closes. It subscribes on every `ready` of that connection, the first
 * and each after a reconnection. ioredis' own `autoResubscribe` is off: it only renews
 * subscriptions that once succeeded, so a SUBSCRIBE queued while Redis was down at start (and
 * dropped after the client's retries), or one lost to a second drop during the renewal, would
 * never be made again.
 */
export class RedisBus implements ReplicaBus {
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #replicaId: string;
  /** `<prefix>replica:`, followed by a replica's id. */
  readonly #replicaChannels: string;
  readonly #own: string;
  readonly #all: string;
  readonly #bounded: BoundedCalls;
  readonly #logger: Logger;
  readonly #handlers = new Set<Handler>();
  readonly #subscribed: Promise<void>;
  #markSubscribed!: () => void;
  #subscribing = false;

  constructor(redis: Redis, options: { prefix: string; replicaId: string; bounded: BoundedCalls; logger: Logger }) {
    this.#redis = redis;
    this.#replicaId = options.replicaId;
    this.#replicaChannels = `${options.prefix}replica:`;
    this.#own = `${this.#replicaChannels}${options.replicaId}`;
    this.#all = `${options.prefix}all`;
    this.#bounded = options.bounded;
    this.#logger = options.logger;
    this.#subscribed = new Promise((resolve) => (this.#markSubscribed = resolve));
    this.#subscriber = redis.duplicate({ lazyConnect: false, autoResubscribe: false, connectionName: `conflux-bus-${options.replicaId}` });
    // Without a listener ioredis reports every failed reconnection as unhandled; the state's
    // health() and failing calls are where an outage shows.
    this.#subscriber.on('error', (error: Error) => this.#logger.debug({ err: error.message }, 'redis bus connection error'));
    this.#subscriber.on('ready', () => this.#subscribe());
    this.#subscriber.on('message', (channel: string, raw: string) => this.#receive(channel, raw));
  }

  /** Resolves once this replica receives its messages (messages published before are not delivered). */
  subscribed(): Promise<void> {
    return this.#subscribed;
  }

  /** Redis counts the subscribers a message reached: none means the replica is gone (or reconnecting). */
  async send(replica: string, message: ReplicaMessage): Promise<boolean> {
    return (await this.#publish(`${this.#replicaChannels}${replica}`, message)) > 0;
  }

  async broadcast(message: ReplicaMessage): Promise<void> {
    await this.#publish(this.#all, message);
  }

  onMessage(handler: Handler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Drops the subscriber connection at once: QUIT could wait forever on a Redis that does not answer. */
  close(): void {
    this.#handlers.clear();
    this.#subscriber.disconnect();
  }

  async #publish(channel: string, message: ReplicaMessage): Promise<number> {
    const payload: BusPayload = { from: this.#replicaId, message };
    return this.#bounded.run('replica message publish', () => this.#redis.publish(channel, JSON.stringify(payload)));
  }

  #subscribe(): void {
    if (this.#subscribing) return;
    this.#subscribing = true;
    this.#subscriber.subscribe(this.#own, this.#all).then(
      () => {
        this.#subscribing = false;
        this.#markSubscribed();
      },
      (error: Error) => {
        // The next `ready` (after the client reconnects) tries again.
        this.#subscribing = false;
        this.#logger.debug({ err: error.message }, 'redis bus could not subscribe yet');
      },
    );
  }

  #receive(channel: string, raw: string): void {
    const parsed = BusPayloadSchema.safeParse(parseJson(raw));
    if (!parsed.success) {
      // The content is not logged: it may carry what a client or a server sent.
      this.#logger.debug({ channel, issues: parsed.error.issues.map((i) => i.path.join('.') || i.message) }, 'dropped an invalid replica message');
      return;
    }
    const { from, message } = parsed.data;
    if (channel === this.#all && from === this.#replicaId) return;
    for (const handler of this.#handlers) {
      // A throwing handler must neither stop the others nor surface inside the Redis client's reply parsing.
      try {
        handler(message, from);
      } catch (error) {
        this.#logger.error({ err: (error as Error).message, kind: message.kind }, 'a replica message handler failed');
      }
    }
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

import type { Logger } from 'pino';

/** What the gateway does while Redis, the shared limiter, does not answer. */
export type RedisErrorPolicy = 'failOpen' | 'failClosed';

/** Whether the limiter's backend answers. */
export type LimiterState = 'ok' | 'unavailable';

/**
 * Whether Redis answers, as the limiter last saw it. Logs each change once: going down (with
 * the cause and the policy now in force) and coming back. A Redis that refuses connections
 * reports an error on every reconnect attempt (every few hundred milliseconds at first), and a
 * flood of requests would report one each: neither repeats the line.
 */
export class RedisAvailability {
  #state: LimiterState = 'ok';

  constructor(
    private readonly logger: Logger,
    private readonly policy: RedisErrorPolicy,
  ) {}

  get state(): LimiterState {
    return this.#state;
  }

  down(cause: unknown): void {
    if (this.#state === 'unavailable') return;
    this.#state = 'unavailable';
    const meanwhile = this.policy === 'failOpen' ? 'requests are let through without rate limits' : 'requests are refused with 503';
    this.logger.warn({ err: describe(cause), onRedisError: this.policy }, `Redis (the shared rate limiter) does not answer; ${meanwhile} until it does`);
  }

  up(): void {
    if (this.#state === 'ok') return;
    this.#state = 'ok';
    this.logger.info('Redis (the shared rate limiter) answers again; rate limits apply');
  }
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message || cause.name : String(cause);
}

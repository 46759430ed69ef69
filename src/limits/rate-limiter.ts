import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RedisAvailability, type LimiterState, type RedisErrorPolicy } from './redis-availability.js';
import { withTimeout } from './with-timeout.js';

export interface RateDecision {
  allowed: boolean;
  /** Seconds to wait before the next request would be allowed (0 when allowed). */
  retryAfterSeconds: number;
  /** Redis did not answer: the policy decided (allowed under failOpen, refused under failClosed), not the count. */
  unavailable?: true | undefined;
}

/** What `/ready` reports about the limiter. */
export interface LimiterHealth {
  backend: 'memory' | 'redis';
  state: LimiterState;
  /** Requests are being refused because the backend does not answer (failClosed). */
  refusing: boolean;
}

/**
 * A sliding-window rate limiter: the count of the current fixed window plus the previous
 * window's count weighted by how much of it still overlaps the sliding window. Constant
 * memory per key, and the same arithmetic in memory and in Redis.
 */
export interface RateLimiter {
  /** Counts one event under `key` when the limit allows it. */
  hit(key: string, limit: number, windowMs: number): Promise<RateDecision>;
  /** Whether one more event would be allowed, without counting one. */
  peek(key: string, limit: number, windowMs: number): Promise<RateDecision>;
  /** Asks the backend whether it answers (for `/ready`). */
  health(): Promise<LimiterHealth>;
  close(): Promise<void>;
}

/** Per-process limits, for a single replica. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #windows = new Map<string, { start: number; windowMs: number; current: number; previous: number }>();
  readonly #sweeper: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#sweeper = setInterval(() => this.#sweep(), 60_000);
    this.#sweeper.unref();
  }

  async hit(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = this.#now();
    const start = now - (now % windowMs);
    let entry = this.#windows.get(key);
    if (!entry || entry.start <= start - 2 * windowMs) entry = { start, windowMs, current: 0, previous: 0 };
    else if (entry.start < start) entry = { start, windowMs, current: 0, previous: entry.start === start - windowMs ? entry.current : 0 };
    this.#windows.set(key, entry);
    return decide(entry.current, entry.previous, now - start, limit, windowMs, () => entry.current++);
  }

  async peek(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = this.#now();
    const start = now - (now % windowMs);
    const entry = this.#windows.get(key);
    const current = entry?.start === start ? entry.current : 0;
    const previous = entry?.start === start ? entry.previous : entry?.start === start - windowMs ? entry.current : 0;
    return decide(current, previous, now - start, limit, windowMs, () => {});
  }

  async health(): Promise<LimiterHealth> {
    return { backend: 'memory', state: 'ok', refusing: false };
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#windows.clear();
  }

  /**
   * Drops entries that no longer weigh anything: an entry counts as the current window and then
   * as the previous one, so it matters until two of its own windows have passed. A fixed age
   * would reset windows longer than that age early.
   */
  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#windows) if (now - entry.start >= 2 * entry.windowMs) this.#windows.delete(key);
  }
}

/** How long a limiter call waits for Redis; beyond it the `onRedisError` policy decides. */
const DEFAULT_TIMEOUT_MS = 500;
/** While Redis is unavailable, it is pinged at most this often (requests do not wait for it). */
const PROBE_INTERVAL_MS = 1000;

export interface RedisRateLimiterOptions {
  /** Key prefix, so tests and deployments can share one Redis. */
  prefix?: string | undefined;
  now?: (() => number) | undefined;
  /** What a request gets while Redis does not answer. Default `failOpen`. */
  onRedisError?: RedisErrorPolicy | undefined;
  /** Longest wait for one limiter call. */
  timeoutMs?: number | undefined;
  /** Where the state changes (down, up again) are logged, once each. */
  logger: Logger;
  /** Told of every decision the policy made in Redis' place (for metrics). */
  onFallback?: ((outcome: 'allowed' | 'refused') => void) | undefined;
}

/**
 * Limits shared by every replica. One round trip per hit: a Lua script reads both windows and
 * counts the hit only when it is allowed.
 *
 * Redis failing never fails a request: a call that errs or gets no answer within `timeoutMs`
 * marks Redis unavailable, and from then on calls do not touch it (they would queue in the
 * client) but return the policy's decision at once, while a ping every second (and the
 * client's reconnection) looks for it coming back.
 */
export class RedisRateLimiter implements RateLimiter {
  static readonly SCRIPT = `
    local current = tonumber(redis.call('GET', KEYS[1]) or '0')
    local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
    local limit = tonumber(ARGV[1])
    local window = tonumber(ARGV[2])
    local elapsed = tonumber(ARGV[3])
    local weighted = previous * (window - elapsed) / window + current
    if weighted + 1 > limit then return {0, current, previous} end
    redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], window * 2)
    return {1, current + 1, previous}`;

  readonly #prefix: string;
  readonly #now: () => number;
  readonly #policy: RedisErrorPolicy;
  readonly #timeoutMs: number;
  readonly #availability: RedisAvailability;
  readonly #onFallback: RedisRateLimiterOptions['onFallback'];
  #probing = false;
  #lastProbe = Number.NEGATIVE_INFINITY;
  #healthCheck: Promise<void> | undefined;
  readonly #onError = (error: Error) => this.#availability.down(error);
  readonly #onReady = () => this.#availability.up();

  constructor(
    private readonly redis: Redis,
    options: RedisRateLimiterOptions,
  ) {
    this.#prefix = options.prefix ?? 'conflux:rl:';
    this.#now = options.now ?? Date.now;
    this.#policy = options.onRedisError ?? 'failOpen';
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#availability = new RedisAvailability(options.logger, this.#policy);
    this.#onFallback = options.onFallback;
    // The client reports each failed (re)connection; its reconnection reports recovery.
    redis.on('error', this.#onError);
    redis.on('ready', this.#onReady);
  }

  async hit(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = this.#now();
    const start = now - (now % windowMs);
    const keys = this.#keys(key, start, windowMs);
    return this.#ask(async () => {
      const [allowed, current, previous] = (await this.redis.eval(RedisRateLimiter.SCRIPT, 2, ...keys, limit, windowMs, now - start)) as [number, number, number];
      if (allowed === 1) return { allowed: true, retryAfterSeconds: 0 };
      return decide(current, previous, now - start, limit, windowMs, () => {});
    });
  }

  async peek(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = this.#now();
    const start = now - (now % windowMs);
    return this.#ask(async () => {
      const [current, previous] = await this.redis.mget(...this.#keys(key, start, windowMs));
      return decide(Number(current ?? 0), Number(previous ?? 0), now - start, limit, windowMs, () => {});
    });
  }

  async health(): Promise<LimiterHealth> {
    // One check in flight at most: probes of a hung Redis must not pile up in the client.
    this.#healthCheck ??= withTimeout(this.#tryScript(), this.#timeoutMs)
      .then(
        () => this.#availability.up(),
        (error: unknown) => this.#availability.down(error),
      )
      .finally(() => (this.#healthCheck = undefined));
    await this.#healthCheck;
    const state = this.#availability.state;
    return { backend: 'redis', state, refusing: state === 'unavailable' && this.#policy === 'failClosed' };
  }

  async close(): Promise<void> {
    this.redis.off('error', this.#onError);
    this.redis.off('ready', this.#onReady);
  }

  #keys(key: string, start: number, windowMs: number): [string, string] {
    return [`${this.#prefix}${key}:${start}`, `${this.#prefix}${key}:${start - windowMs}`];
  }

  async #ask(command: () => Promise<RateDecision>): Promise<RateDecision> {
    if (this.#availability.state === 'unavailable') {
      this.#probe();
      return this.#fallback();
    }
    try {
      const decision = await withTimeout(command(), this.#timeoutMs);
      this.#availability.up();
      return decision;
    } catch (error) {
      this.#availability.down(error);
      return this.#fallback();
    }
  }

  /**
   * The limiter's own script on a probe key: a Redis that answers pings but refuses scripts or
   * writes (out of memory, a read-only replica) is not back, and must not flap between states.
   */
  async #tryScript(): Promise<void> {
    await this.redis.eval(RedisRateLimiter.SCRIPT, 2, `${this.#prefix}probe:a`, `${this.#prefix}probe:b`, Number.MAX_SAFE_INTEGER, 60_000, 0);
  }

  #fallback(): RateDecision {
    const allowed = this.#policy === 'failOpen';
    this.#onFallback?.(allowed ? 'allowed' : 'refused');
    return { allowed, retryAfterSeconds: allowed ? 0 : 1, unavailable: true };
  }

  /** One ping in flight at most, once a second at most; requests never wait for it. */
  #probe(): void {
    const now = this.#now();
    if (this.#probing || now - this.#lastProbe < PROBE_INTERVAL_MS) return;
    this.#probing = true;
    this.#lastProbe = now;
    void withTimeout(this.#tryScript(), this.#timeoutMs)
      .then(
        () => this.#availability.up(),
        () => {},
      )
      .finally(() => (this.#probing = false));
  }
}

function decide(current: number, previous: number, elapsed: number, limit: number, windowMs: number, count: () => void): RateDecision {
  const weighted = (previous * (windowMs - elapsed)) / windowMs + current;
  if (weighted + 1 <= limit) {
    count();
    return { allowed: true, retryAfterSeconds: 0 };
  }
  // When will the weighted count drop below the limit? Either the previous window's share
  // fades enough within this window, or the next window starts.
  let waitMs = windowMs - elapsed;
  if (previous > 0 && current + 1 <= limit) {
    const needed = ((current + 1 - limit) * windowMs) / previous + (windowMs - elapsed);
    waitMs = Math.min(waitMs, Math.max(0, needed));
  }
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
}

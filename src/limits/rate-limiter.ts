import type { Redis } from 'ioredis';

export interface RateDecision {
  allowed: boolean;
  /** Seconds to wait before the next request would be allowed (0 when allowed). */
  retryAfterSeconds: number;
}

/**
 * A sliding-window rate limiter: the count of the current fixed window plus the previous
 * window's count weighted by how much of it still overlaps the sliding window. Constant
 * memory per key, and the same arithmetic in memory and in Redis.
 */
export interface RateLimiter {
  hit(key: string, limit: number, windowMs: number): Promise<RateDecision>;
  close(): Promise<void>;
}

/** Per-process limits, for a single replica. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #windows = new Map<string, { start: number; current: number; previous: number }>();
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
    if (!entry || entry.start <= start - 2 * windowMs) entry = { start, current: 0, previous: 0 };
    else if (entry.start < start) entry = { start, current: 0, previous: entry.start === start - windowMs ? entry.current : 0 };
    this.#windows.set(key, entry);
    return decide(entry.current, entry.previous, now - start, limit, windowMs, () => entry.current++);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#windows.clear();
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#windows) if (now - entry.start > 2 * 3_600_000) this.#windows.delete(key);
  }
}

/**
 * Limits shared by every replica. One round trip per hit: a Lua script reads both windows and
 * counts the hit only when it is allowed.
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

  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'conflux:rl:',
    private readonly now: () => number = Date.now,
  ) {}

  async hit(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = this.now();
    const start = now - (now % windowMs);
    const keys = [`${this.prefix}${key}:${start}`, `${this.prefix}${key}:${start - windowMs}`];
    const [allowed, current, previous] = (await this.redis.eval(RedisRateLimiter.SCRIPT, 2, ...keys, limit, windowMs, now - start)) as [number, number, number];
    if (allowed === 1) return { allowed: true, retryAfterSeconds: 0 };
    return decide(current, previous, now - start, limit, windowMs, () => {});
  }

  async close(): Promise<void> {}
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

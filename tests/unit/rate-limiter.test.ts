import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from '../../src/limits/rate-limiter.js';
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js';
import { newRedis, redisAvailable } from '../helpers/redis.js';

const hasRedis = await redisAvailable();
const redis = hasRedis ? newRedis() : undefined;
afterAll(() => redis?.disconnect());

describe.each([
  ['memory', (now: () => number) => new MemoryRateLimiter(now)],
  ...(hasRedis ? [['redis', (now: () => number) => new RedisRateLimiter(redis!, `conflux:test:${randomBytes(4).toString('hex')}:`, now)] as const] : []),
] as [string, (now: () => number) => RateLimiter][])('sliding-window rate limiter (%s)', (_kind, create) => {
  it('allows up to the limit in a window, then refuses with a retry time', async () => {
    let now = 1_000_000 * 60_000; // the start of a window
    const limiter = create(() => now);
    for (let i = 0; i < 5; i++) expect((await limiter.hit('k', 5, 60_000)).allowed).toBe(true);
    const refused = await limiter.hit('k', 5, 60_000);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(60);
    // another key has its own budget
    expect((await limiter.hit('other', 5, 60_000)).allowed).toBe(true);
    await limiter.close();
  });

  it('weights the previous window by its overlap with the sliding window', async () => {
    let now = 2_000_000 * 60_000;
    const limiter = create(() => now);
    for (let i = 0; i < 10; i++) await limiter.hit('w', 10, 60_000);
    now += 60_000 + 30_000; // half-way into the next window: 10 * 0.5 = 5 of the old hits still count
    let allowed = 0;
    while ((await limiter.hit('w', 10, 60_000)).allowed) allowed++;
    expect(allowed).toBe(5);
    now += 60_000; // a window later the first hits are gone; the 5 of the last window weigh 2.5
    allowed = 0;
    while ((await limiter.hit('w', 10, 60_000)).allowed) allowed++;
    expect(allowed).toBe(7);
    await limiter.close();
  });
});

describe('circuit breaker', () => {
  it('opens after the threshold, lets one probe through after the cooldown, and closes on success', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, now: () => now });
    breaker.failure();
    breaker.failure();
    expect(breaker.state).toBe('closed');
    breaker.success(); // a success resets the count
    breaker.failure();
    breaker.failure();
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    expect(breaker.retryAfterSeconds).toBe(1);
    now = 1000;
    expect(breaker.state).toBe('half-open');
    expect(breaker.allow()).toBe(true);
    expect(breaker.allow()).toBe(false); // one probe at a time
    breaker.failure();
    expect(breaker.state).toBe('open'); // the probe failed: open again
    now = 2000;
    expect(breaker.allow()).toBe(true);
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });
});

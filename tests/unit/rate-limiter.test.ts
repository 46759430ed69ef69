import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from '../../src/limits/rate-limiter.js';
import { silentLogger } from '../../src/observability/logger.js';
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js';
import { freePort, waitFor } from '../helpers/gateway.js';
import { newRedis, redisAvailable, startHungServer, startRedisRelay } from '../helpers/redis.js';

const hasRedis = await redisAvailable();
const redis = hasRedis ? newRedis() : undefined;
afterAll(() => redis?.disconnect());

describe.each([
  ['memory', (now: () => number) => new MemoryRateLimiter(now)],
  ...(hasRedis ? [['redis', (now: () => number) => new RedisRateLimiter(redis!, { prefix: `conflux:test:${randomBytes(4).toString('hex')}:`, now, logger: silentLogger() })] as const] : []),
] as [string, (now: () => number) => RateLimiter][])('sliding-window rate limiter (%s)', (_kind, create) => {
  it('allows up to the limit in a window, then refuses with a retry time', async () => {
    const now = 1_000_000 * 60_000; // the start of a window
    const limiter = create(() => now);
    for (let i = 0; i < 5; i++) expect((await limiter.hit('k', 5, 60_000)).allowed).toBe(true);
    const refused = await limiter.hit('k', 5, 60_000);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(60);
    // another key has its own budget
    expect((await limiter.hit('other', 5, 60_000)).allowed).toBe(true);
    await limiter.close();
  });

  it('peeks without counting, with the same arithmetic as a hit', async () => {
    let now = 3_000_000 * 60_000;
    const limiter = create(() => now);
    for (let i = 0; i < 10; i++) expect(await limiter.peek('p', 3, 60_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    for (let i = 0; i < 3; i++) await limiter.hit('p', 3, 60_000);
    expect(await limiter.peek('p', 3, 60_000)).toEqual({ allowed: false, retryAfterSeconds: 60 });
    now += 60_000 + 40_000; // the 3 old hits now weigh 1
    expect((await limiter.peek('p', 3, 60_000)).allowed).toBe(true);
    expect((await limiter.peek('p', 1, 60_000)).allowed).toBe(false);
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

describe('Redis limiter when Redis does not answer', () => {
  type Line = { level: number; msg: string; onRedisError?: string };
  function capture(): { logger: Logger; lines: Line[]; about: (text: string) => Line[] } {
    const lines: Line[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Line);
        done();
      },
    });
    return { logger: pino({ level: 'info' }, sink), lines, about: (text) => lines.filter((l) => l.msg.includes(text)) };
  }
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  /** A client of a port where nothing listens: every reconnect attempt reports an error. */
  async function refusedClient(): Promise<{ redis: Redis; port: number; errors: () => number }> {
    const port = await freePort();
    const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 20 });
    let errors = 0;
    redis.on('error', () => errors++);
    closers.push(() => redis.disconnect());
    return { redis, port, errors: () => errors };
  }

  /** A server that accepts connections and never answers: a hung Redis. */
  async function hungServer(): Promise<number> {
    const hung = await startHungServer();
    closers.push(() => hung.close());
    return hung.port;
  }

  it('fails open on a closed port: requests pass, and the outage is logged once however often the client retries', async () => {
    const { logger, about } = capture();
    const { redis, errors } = await refusedClient();
    const limiter = new RedisRateLimiter(redis, { logger, onRedisError: 'failOpen', timeoutMs: 200 });
    closers.push(() => limiter.close());
    for (let i = 0; i < 20; i++) expect(await limiter.hit('k', 1, 60_000)).toEqual({ allowed: true, retryAfterSeconds: 0, unavailable: true });
    expect(await limiter.peek('k', 1, 60_000)).toMatchObject({ allowed: true, unavailable: true });
    await waitFor(() => errors() >= 5, 10_000, 'several reconnect attempts');
    expect(about('does not answer')).toHaveLength(1);
    expect(about('does not answer')[0]).toMatchObject({ level: 40, onRedisError: 'failOpen' });
    expect(await limiter.health()).toEqual({ backend: 'redis', state: 'unavailable', refusing: false });
  });

  it('fails closed on a closed port: every call is refused as unavailable, and health says it refuses', async () => {
    const { logger, about } = capture();
    const { redis } = await refusedClient();
    const limiter = new RedisRateLimiter(redis, { logger, onRedisError: 'failClosed', timeoutMs: 200 });
    closers.push(() => limiter.close());
    for (let i = 0; i < 5; i++) expect(await limiter.hit('k', 100, 60_000)).toEqual({ allowed: false, retryAfterSeconds: 1, unavailable: true });
    expect(await limiter.health()).toEqual({ backend: 'redis', state: 'unavailable', refusing: true });
    expect(about('does not answer')).toHaveLength(1);
  });

  it('does not hang on a Redis that accepts and never answers: the call gives up after its timeout', async () => {
    const port = await hungServer();
    const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
    closers.push(() => redis.disconnect());
    const { logger, about } = capture();
    const fallbacks: string[] = [];
    const limiter = new RedisRateLimiter(redis, { logger, onRedisError: 'failClosed', timeoutMs: 100, onFallback: (outcome) => fallbacks.push(outcome) });
    closers.push(() => limiter.close());
    const decisions = await Promise.all(Array.from({ length: 10 }, () => limiter.hit('k', 100, 60_000)));
    expect(decisions.every((d) => !d.allowed && d.unavailable)).toBe(true);
    // Once known to be down, calls are decided at once without queueing commands behind the hung one.
    expect(await limiter.hit('k', 100, 60_000)).toMatchObject({ allowed: false, unavailable: true });
    expect(fallbacks).toEqual(Array(11).fill('refused'));
    expect(about('does not answer')).toHaveLength(1);
    expect(about('does not answer')[0]!.msg).toContain('refused with 503');
  });

  it.skipIf(!hasRedis)('logs the return of Redis once, and counts again', async () => {
    const { logger, about } = capture();
    const { redis, port, errors } = await refusedClient();
    const limiter = new RedisRateLimiter(redis, { logger, onRedisError: 'failClosed', timeoutMs: 200, prefix: `conflux:test:${randomBytes(4).toString('hex')}:` });
    closers.push(() => limiter.close());
    expect((await limiter.hit('k', 100, 60_000)).unavailable).toBe(true);
    await waitFor(() => errors() >= 3, 10_000, 'reconnect attempts');
    // Redis appears on the port (a TCP relay to the test Redis): the client reconnects.
    const relay = await startRedisRelay({ port });
    closers.push(() => relay.close());
    await waitFor(async () => !(await limiter.hit('k', 100, 60_000)).unavailable, 10_000, 'the limiter to use Redis again');
    expect(await limiter.hit('k', 100, 60_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    expect(await limiter.health()).toEqual({ backend: 'redis', state: 'ok', refusing: false });
    expect(about('does not answer')).toHaveLength(1);
    expect(about('answers again')).toHaveLength(1);
  });
});

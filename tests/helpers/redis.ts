import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { RedisSharedState } from '../../src/state/redis-state.js';
import { scaled } from './load-scale.js';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let reachable: Promise<boolean> | undefined;

/** Whether Redis answers. Under CI it must: a missing server fails instead of skipping. */
export function redisAvailable(): Promise<boolean> {
  reachable ??= (async () => {
    const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
    try {
      await redis.connect();
      await redis.ping();
      return true;
    } catch (error) {
      if (process.env.CI) throw new Error(`Redis at ${TEST_REDIS_URL} is required under CI: ${(error as Error).message}`, { cause: error });
      return false;
    } finally {
      redis.disconnect();
    }
  })();
  return reachable;
}

export function newRedis(): Redis {
  return new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 2 });
}

/**
 * The bound on each call of a shared state whose test is not about that bound: the gateway's
 * 500 ms is for a Redis on a network, and a busy machine running the suite answers slower than
 * that at times (a LOADING answer then read as none, a GET stream's holder went unrecorded).
 */
export const UNHURRIED_CALL_MS = scaled(5_000);

/** A replica's shared state on the test Redis, each call bounded by `UNHURRIED_CALL_MS`. */
export function testSharedState(redis: Redis, keyPrefix: string): RedisSharedState {
  return new RedisSharedState(redis, { keyPrefix, logger: silentLogger(), timeoutMs: UNHURRIED_CALL_MS });
}

export interface RedisTestKit {
  /** A client of the test Redis; undefined where none is running (never under CI). */
  redis: Redis | undefined;
  /** Clean-ups run after the current test, the last added first. */
  closers: (() => Promise<void> | void)[];
  /** A key prefix of the test's own; its keys are deleted after the test. */
  testPrefix(): string;
  /** A client of a Redis that accepts connections and never answers; both go after the test. */
  unansweringClient(): Promise<Redis>;
}

/**
 * What a test file on Redis needs: its client, clean-ups after each test, key prefixes of its
 * own. Registers the file's `afterEach` and `afterAll`: call it once, at the top of the file.
 */
export async function redisTestKit(): Promise<RedisTestKit> {
  const redis = (await redisAvailable()) ? newRedis() : undefined;
  const closers: RedisTestKit['closers'] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(() => redis?.disconnect());
  return {
    redis,
    closers,
    testPrefix: () => {
      const prefix = `conflux:test:${randomBytes(4).toString('hex')}:`;
      if (redis) closers.push(() => deleteKeys(redis, prefix));
      return prefix;
    },
    unansweringClient: async () => {
      const hung = await startHungServer();
      closers.push(() => hung.close());
      const client = new Redis({ host: '127.0.0.1', port: hung.port, maxRetriesPerRequest: 2 });
      client.on('error', () => {});
      closers.push(() => client.disconnect());
      return client;
    },
  };
}

/** Deletes every key under `prefix`. */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/**
 * A TCP server that accepts connections and never answers: a hung Redis. `close` ends its
 * connections and stops it.
 */
export async function startHungServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP relay to the test Redis, on `port` (0: any free one): Redis appearing on a port its
 * clients have been retrying, or, with `delayMs`, holding every reply that long before passing
 * it on (in order), as Redis slowed by a latency spike. `close` ends its connections and stops it.
 */
export async function startRedisRelay(options: { port?: number; delayMs?: number } = {}): Promise<{ port: number; close(): Promise<void> }> {
  const target = new URL(TEST_REDIS_URL);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((socket) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    socket.pipe(upstream);
    const { delayMs } = options;
    if (delayMs) {
      // Timers of one duration fire in the order they were set: replies keep their order.
      upstream.on('data', (chunk: Buffer) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          socket.write(chunk);
        }, delayMs);
        timers.add(timer);
      });
    } else {
      upstream.pipe(socket);
    }
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

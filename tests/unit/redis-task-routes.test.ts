import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { TaskRoute } from '../../src/gateway/task-routes.js';
import { silentLogger } from '../../src/observability/logger.js';
import { BoundedCalls } from '../../src/state/bounded.js';
import { RedisTaskRouteStore } from '../../src/state/redis-task-routes.js';
import { SharedStateUnavailableError } from '../../src/state/shared-state.js';
import { waitFor } from '../helpers/gateway.js';
import { redisTestKit } from '../helpers/redis.js';

const { redis, testPrefix, unansweringClient } = await redisTestKit();

/** A store under a prefix of its own, whose keys are deleted after the test. */
function freshStore(options: { logger?: ReturnType<typeof silentLogger>; now?: () => number } = {}): { store: RedisTaskRouteStore; key: (taskId: string) => string } {
  const prefix = testPrefix();
  return { store: new RedisTaskRouteStore(redis!, { prefix, logger: options.logger ?? silentLogger(), now: options.now }), key: (taskId) => `${prefix}task-route:${taskId}` };
}

const route = (expiresAt: number): TaskRoute => ({ server: 'jobs', upstreamTaskId: 'conflux.replica.AbCd1234.task-7', tool: 'slow_compute', owner: 'ann', expiresAt });

if (redis) describe('the Redis task route store', () => {
  it('keeps a route as one JSON key that expires with the route, and forgets it when deleted', async () => {
    const { store, key } = freshStore();
    const expiresAt = Date.now() + 60_000;
    await store.put('task-a', route(expiresAt));
    expect(await store.get('task-a')).toEqual(route(expiresAt));
    expect(JSON.parse((await redis!.get(key('task-a')))!)).toEqual(route(expiresAt));
    const ttl = await redis!.pttl(key('task-a'));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await store.get('task-b')).toBeUndefined();
    await store.delete('task-a');
    expect(await store.get('task-a')).toBeUndefined();
    expect(await redis!.exists(key('task-a'))).toBe(0);
  });

  it('lets Redis drop a route when its time is up', async () => {
    const { store, key } = freshStore();
    await store.put('task-short', route(Date.now() + 100));
    expect(await store.get('task-short')).toMatchObject({ server: 'jobs' });
    await waitFor(async () => (await redis!.exists(key('task-short'))) === 0, 10_000, 'Redis to expire the route');
    expect(await store.get('task-short')).toBeUndefined();
  });

  it('stores nothing for a route already over, and reads a route past its time as unknown even while Redis still holds it', async () => {
    let now = Date.now();
    const { store, key } = freshStore({ now: () => now });
    await store.put('task-over', route(now - 1));
    expect(await redis!.exists(key('task-over'))).toBe(0);
    await store.put('task-skewed', route(now + 60_000));
    now += 60_000;
    expect(await redis!.exists(key('task-skewed'))).toBe(1);
    expect(await store.get('task-skewed')).toBeUndefined();
  });

  it('reads a value that is not JSON, or not a route, as an unknown task, and says so in the log', async () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk, _encoding, done) => (warnings.push((JSON.parse(String(chunk)) as { msg: string }).msg), done()) }));
    const { store, key } = freshStore({ logger });
    await redis!.set(key('task-garbage'), 'not json {', 'PX', 60_000);
    await redis!.set(key('task-wrong'), JSON.stringify({ ...route(Date.now() + 60_000), owner: 42 }), 'PX', 60_000);
    await redis!.set(key('task-array'), '[]', 'PX', 60_000);
    expect(await store.get('task-garbage')).toBeUndefined();
    expect(await store.get('task-wrong')).toBeUndefined();
    expect(await store.get('task-array')).toBeUndefined();
    expect(warnings).toEqual(Array(3).fill('ignored a task route that does not fit its schema'));
  });

  it('fails every call with SharedStateUnavailableError when Redis does not answer, instead of hanging', async () => {
    const client = await unansweringClient();
    const store = new RedisTaskRouteStore(client, { prefix: 'conflux:test:hung:', logger: silentLogger(), bounded: new BoundedCalls(200, 100) });
    await expect(store.put('task-a', route(Date.now() + 60_000))).rejects.toBeInstanceOf(SharedStateUnavailableError);
    await expect(store.get('task-a')).rejects.toBeInstanceOf(SharedStateUnavailableError);
    await expect(store.delete('task-a')).rejects.toBeInstanceOf(SharedStateUnavailableError);
  });
});

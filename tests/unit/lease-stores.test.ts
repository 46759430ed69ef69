import { describe, expect, it } from 'vitest';
import { BoundedCalls } from '../../src/state/bounded.js';
import { MemoryHub } from '../../src/state/memory-state.js';
import { RedisLeaseStore } from '../../src/state/redis-lease-store.js';
import type { LeaseStore } from '../../src/state/shared-state.js';
import { redisTestKit } from '../helpers/redis.js';

/**
 * The lease stores, in memory and on Redis: one holder at a time, and within a replica one
 * keeper at a time, so that a keeper replaced on its replica (a config change) can neither
 * extend nor let go of the lease its successor took.
 */

const kit = await redisTestKit();
const TTL = 10_000;

const memory = () => {
  const hub = new MemoryHub();
  return (replica: string): LeaseStore => hub.leasesFor(replica);
};

const redis = () => {
  const prefix = kit.testPrefix();
  const bounded = new BoundedCalls(2000, 100);
  return (replica: string): LeaseStore => new RedisLeaseStore(kit.redis!, { prefix, replicaId: replica, bounded });
};

describeStore('memory', memory);
if (kit.redis) describeStore('redis', redis);

function describeStore(kind: string, stores: () => (replica: string) => LeaseStore): void {
  describe(`leases (${kind})`, () => {
    it('has one holder: another replica takes it only once it is let go', async () => {
      const of = stores();
      expect(await of('a').acquire('l', TTL, 'k1')).toBe(true);
      expect(await of('b').acquire('l', TTL, 'k1')).toBe(false);
      expect(await of('b').holder('l')).toBe('a');
      await of('b').release('l', 'k1');
      expect(await of('a').holder('l')).toBe('a');
      await of('a').release('l', 'k1');
      expect(await of('b').holder('l')).toBeUndefined();
      expect(await of('b').acquire('l', TTL, 'k1')).toBe(true);
    });

    it("keeps a replaced keeper on the same replica from extending or freeing its successor's lease", async () => {
      const of = stores();
      const a = of('a');
      expect(await a.acquire('l', TTL, 'old')).toBe(true);
      // The successor waits for the old keeper to let go.
      expect(await a.acquire('l', TTL, 'new')).toBe(false);
      await a.release('l', 'old');
      expect(await a.acquire('l', TTL, 'new')).toBe(true);
      // The old keeper's renewal, or a release of it that arrives late, changes nothing.
      expect(await a.acquire('l', TTL, 'old')).toBe(false);
      await a.release('l', 'old');
      expect(await of('b').holder('l')).toBe('a');
      expect(await of('b').acquire('l', TTL, 'x')).toBe(false);
      expect(await a.acquire('l', TTL, 'new')).toBe(true);
    });

    it('names the replica, not the keeper, as holder', async () => {
      const of = stores();
      expect(await of('replica-1').acquire('l', TTL, 'secret-keeper')).toBe(true);
      expect(await of('replica-2').holder('l')).toBe('replica-1');
    });
  });
}

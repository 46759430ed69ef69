import { describe, expect, it } from 'vitest';
import { Balancer, MAX_RING_NODES, NoReplicaAvailableError, hash32, ringNodeCounts } from '../../src/upstream/balancer.js';

const replicas = (count: number, weights: number[] = []) => Array.from({ length: count }, (_, i) => ({ id: `http://10.0.0.${i + 1}:8080/mcp`, weight: weights[i] ?? 1 }));
const all = (count: number) => Array.from({ length: count }, (_, i) => i);

function counts(picks: number[], size: number): number[] {
  const result = Array.from({ length: size }, () => 0);
  for (const pick of picks) result[pick]!++;
  return result;
}

/** A seeded generator (mulberry32), so that `random` is tested on a known sequence. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('round_robin', () => {
  it('takes each replica in turn', () => {
    const balancer = new Balancer('round_robin', replicas(3));
    expect(Array.from({ length: 7 }, () => balancer.pick(all(3)))).toEqual([0, 1, 2, 0, 1, 2, 0]);
  });

  it('spreads evenly over the eligible ones, skipping the others', () => {
    const balancer = new Balancer('round_robin', replicas(4, [5, 1, 1, 1]));
    const picks = Array.from({ length: 300 }, () => balancer.pick([0, 2, 3]));
    // Weights are not round_robin's business.
    expect(counts(picks, 4)).toEqual([100, 0, 100, 100]);
  });

  it('carries on after the last pick when the eligible set changes', () => {
    const balancer = new Balancer('round_robin', replicas(3));
    expect(balancer.pick(all(3))).toBe(0);
    expect(balancer.pick([0, 2])).toBe(2);
    expect(balancer.pick(all(3))).toBe(0);
    expect(balancer.pick(all(3))).toBe(1);
  });
});

describe('weighted', () => {
  it('honours the weights exactly over a whole cycle, by count', () => {
    const balancer = new Balancer('weighted', replicas(3, [5, 3, 2]));
    const picks = Array.from({ length: 1000 }, () => balancer.pick(all(3)));
    expect(counts(picks, 3)).toEqual([500, 300, 200]);
  });

  it('interleaves instead of sending the heaviest replica its share in one burst', () => {
    const balancer = new Balancer('weighted', replicas(2, [3, 1]));
    const picks = Array.from({ length: 8 }, () => balancer.pick(all(2)));
    expect(picks).toEqual([0, 0, 1, 0, 0, 0, 1, 0]);
  });

  it('shares among the eligible replicas by their weights', () => {
    const balancer = new Balancer('weighted', replicas(3, [5, 3, 2]));
    const picks = Array.from({ length: 500 }, () => balancer.pick([1, 2]));
    expect(counts(picks, 3)).toEqual([0, 300, 200]);
  });
});

describe('random', () => {
  it('picks in proportion to the weights', () => {
    const balancer = new Balancer('random', replicas(3, [1, 2, 7]), { random: seeded(42) });
    const [a, b, c] = counts(
      Array.from({ length: 10_000 }, () => balancer.pick(all(3))),
      3,
    );
    expect(a! + b! + c!).toBe(10_000);
    expect(a! / 10_000).toBeCloseTo(0.1, 1);
    expect(b! / 10_000).toBeCloseTo(0.2, 1);
    expect(c! / 10_000).toBeCloseTo(0.7, 1);
  });

  it('maps the generator onto the weights: the low end to the first replica, the high end to the last', () => {
    let next = 0;
    const balancer = new Balancer('random', replicas(2, [1, 3]), { random: () => next });
    next = 0;
    expect(balancer.pick(all(2))).toBe(0);
    next = 0.2499;
    expect(balancer.pick(all(2))).toBe(0);
    next = 0.25;
    expect(balancer.pick(all(2))).toBe(1);
    next = 0.9999;
    expect(balancer.pick(all(2))).toBe(1);
  });
});

describe('least_connections', () => {
  it('picks the replica with the fewest requests in flight', () => {
    const balancer = new Balancer('least_connections', replicas(3));
    expect(balancer.pick(all(3), { inFlight: [4, 1, 3] })).toBe(1);
    expect(balancer.pick(all(3), { inFlight: [0, 1, 3] })).toBe(0);
    expect(balancer.pick([1, 2], { inFlight: [0, 5, 3] })).toBe(2);
  });

  it('counts load per unit of weight', () => {
    const balancer = new Balancer('least_connections', replicas(2, [4, 1]));
    // 3 of 4 is less loaded than 1 of 1.
    expect(balancer.pick(all(2), { inFlight: [3, 1] })).toBe(0);
    expect(balancer.pick(all(2), { inFlight: [5, 1] })).toBe(1);
  });

  it('takes tied replicas in turn', () => {
    const balancer = new Balancer('least_connections', replicas(3));
    const picks = Array.from({ length: 6 }, () => balancer.pick(all(3), { inFlight: [0, 0, 0] }));
    expect(picks).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('fills the replicas up evenly as requests start', () => {
    const balancer = new Balancer('least_connections', replicas(3));
    const inFlight = [0, 0, 0];
    for (let i = 0; i < 30; i++) inFlight[balancer.pick(all(3), { inFlight })]!++;
    expect(inFlight).toEqual([10, 10, 10]);
  });
});

describe('affinity (consistent hashing)', () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `session-${i}`);

  it('sends one key to one replica, every time, and the same on another balancer built alike', () => {
    const first = new Balancer('session_affinity', replicas(3));
    const second = new Balancer('session_affinity', replicas(3));
    for (const key of keys.slice(0, 500)) {
      const picked = first.pick(all(3), { key });
      expect(first.pick(all(3), { key })).toBe(picked);
      expect(second.pick(all(3), { key })).toBe(picked);
    }
  });

  it('spreads keys over the replicas by their weights', () => {
    const balancer = new Balancer('user_affinity', replicas(3, [1, 1, 2]));
    const [a, b, c] = counts(
      keys.map((key) => balancer.pick(all(3), { key })),
      3,
    );
    expect(a! / keys.length).toBeGreaterThan(0.18);
    expect(a! / keys.length).toBeLessThan(0.32);
    expect(b! / keys.length).toBeGreaterThan(0.18);
    expect(b! / keys.length).toBeLessThan(0.32);
    expect(c! / keys.length).toBeGreaterThan(0.4);
    expect(c! / keys.length).toBeLessThan(0.6);
  });

  it('moves only the keys of a replica that leaves (about 1/N of them), and they come back with it', () => {
    const balancer = new Balancer('session_affinity', replicas(4));
    const before = keys.map((key) => balancer.pick(all(4), { key }));
    const after = keys.map((key) => balancer.pick([0, 1, 3], { key }));
    const moved = keys.filter((_, i) => before[i] !== after[i]);
    // Exactly the keys that were on replica 2 moved, none of the others.
    expect(moved.length).toBe(before.filter((pick) => pick === 2).length);
    keys.forEach((_, i) => {
      if (before[i] !== 2) expect(after[i]).toBe(before[i]);
      else expect(after[i]).not.toBe(2);
    });
    expect(moved.length / keys.length).toBeGreaterThan(0.15);
    expect(moved.length / keys.length).toBeLessThan(0.35);
    // The keys it held spread over the others rather than all landing on one neighbour.
    const landed = new Set(after.filter((_, i) => before[i] === 2));
    expect(landed.size).toBe(3);
    expect(keys.map((key) => balancer.pick(all(4), { key }))).toEqual(before);
  });

  it('keeps its mapping when a replica is added, except for the keys the new one takes', () => {
    const three = new Balancer('session_affinity', replicas(3));
    const four = new Balancer('session_affinity', replicas(4));
    const taken = keys.filter((key) => three.pick(all(3), { key }) !== four.pick(all(4), { key }));
    expect(taken.every((key) => four.pick(all(4), { key }) === 3)).toBe(true);
    expect(taken.length / keys.length).toBeGreaterThan(0.15);
    expect(taken.length / keys.length).toBeLessThan(0.35);
  });

  it('picks in turn when there is no key to hash', () => {
    const balancer = new Balancer('user_affinity', replicas(3));
    expect([balancer.pick(all(3)), balancer.pick(all(3)), balancer.pick(all(3))]).toEqual([0, 1, 2]);
  });
});

describe('the hash ring size', () => {
  it('gives 160 virtual nodes per unit of weight while the ring stays small', () => {
    expect(ringNodeCounts([1, 2, 3])).toEqual([160, 320, 480]);
    expect(new Balancer('session_affinity', replicas(3, [1, 2, 3])).ringSize).toBe(960);
    expect(new Balancer('round_robin', replicas(3)).ringSize).toBe(0);
  });

  it('scales the nodes down by weight past the cap, at least one each, never past the cap', () => {
    const counts = ringNodeCounts([1000, 500, 1]);
    expect(counts.reduce((a, b) => a + b)).toBeLessThanOrEqual(MAX_RING_NODES);
    expect(counts[0]! / counts[1]!).toBeCloseTo(2, 2);
    // 16,381 nodes over 1,501 units of weight: 10 per unit.
    expect(counts).toEqual([10_913, 5_456, 10]);
    const lightest = ringNodeCounts([...Array.from({ length: 63 }, () => 1000), 1]);
    expect(lightest.reduce((a, b) => a + b)).toBeLessThanOrEqual(MAX_RING_NODES);
    expect(lightest[63]).toBe(1);
  });

  it('builds the largest configuration the schema allows (64 replicas of weight 1000) within the cap, shares still by weight', () => {
    const heavy = new Balancer('user_affinity', replicas(64, Array.from({ length: 64 }, () => 1000)));
    expect(heavy.ringSize).toBeLessThanOrEqual(MAX_RING_NODES);
    expect(heavy.ringSize).toBeGreaterThanOrEqual(MAX_RING_NODES - 64);
    const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
    const shares = counts(
      keys.map((key) => heavy.pick(all(64), { key })),
      64,
    );
    const even = keys.length / 64;
    for (const share of shares) {
      expect(share).toBeGreaterThan(even * 0.6);
      expect(share).toBeLessThan(even * 1.4);
    }
  });

  it('on a capped ring, still moves only the keys of a replica that leaves, and they come back with it', () => {
    const balancer = new Balancer('session_affinity', replicas(40, Array.from({ length: 40 }, (_, i) => 500 + i * 10)));
    expect(balancer.ringSize).toBeLessThanOrEqual(MAX_RING_NODES);
    const keys = Array.from({ length: 10_000 }, (_, i) => `session-${i}`);
    const before = keys.map((key) => balancer.pick(all(40), { key }));
    const without7 = all(40).filter((index) => index !== 7);
    const after = keys.map((key) => balancer.pick(without7, { key }));
    keys.forEach((_, i) => {
      if (before[i] !== 7) expect(after[i]).toBe(before[i]);
      else expect(after[i]).not.toBe(7);
    });
    expect(before.filter((pick) => pick === 7).length).toBeGreaterThan(0);
    expect(keys.map((key) => balancer.pick(all(40), { key }))).toEqual(before);
  });
});

describe('no replica to pick', () => {
  it.each(['round_robin', 'weighted', 'random', 'least_connections', 'session_affinity', 'user_affinity'] as const)('%s refuses with a clear error', (strategy) => {
    const balancer = new Balancer(strategy, replicas(3));
    expect(() => balancer.pick([], { key: 'k', inFlight: [0, 0, 0] })).toThrow(NoReplicaAvailableError);
    expect(() => balancer.pick([], { key: 'k' })).toThrow('none of its 3 replicas is ready');
  });

  it('ignores indexes that name no replica', () => {
    const balancer = new Balancer('round_robin', replicas(2));
    expect(() => balancer.pick([5, -1])).toThrow(NoReplicaAvailableError);
    expect(balancer.pick([5, 1])).toBe(1);
  });
});

describe('hash32', () => {
  it('is a stable unsigned 32-bit value', () => {
    expect(hash32('abc')).toBe(hash32('abc'));
    expect(hash32('abc')).not.toBe(hash32('abd'));
    for (const text of ['', 'a', 'session-1', 'é']) {
      const value = hash32(text);
      expect(Number.isInteger(value) && value >= 0 && value < 2 ** 32).toBe(true);
    }
  });
});

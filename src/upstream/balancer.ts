import type { BalanceStrategy } from '../config/schema.js';

/** Virtual nodes per unit of weight on the hash ring: enough that each replica's share stays within a few percent of its weight. */
const VIRTUAL_NODES = 160;
/**
 * Virtual nodes on one ring at most. Without a cap, 64 replicas of weight 1000 made ten
 * million nodes (43 s and 1.4 GB to build and sort); 16k still gives each of 64 equal replicas
 * 256 nodes, within a few percent of its share. Past the cap each replica's count is scaled
 * by its weight over the total weight (at least one node each).
 */
export const MAX_RING_NODES = 16_384;

/** No replica may take the request: none is ready, or every one that is was already tried. */
export class NoReplicaAvailableError extends Error {
  constructor(readonly total: number) {
    super(total === 0 ? 'it has no replicas' : `none of its ${total} replicas is ready`);
    this.name = 'NoReplicaAvailableError';
  }
}

/** What one pick may depend on besides the strategy's own state. */
export interface PickContext {
  /** Requests in flight on each replica, by index (`least_connections`). */
  inFlight?: readonly number[];
  /** The session id or principal the affinity strategies hash; without one they pick round robin. */
  key?: string | undefined;
}

export interface BalancerOptions {
  /** [0, 1), for `random`; `Math.random` unless a test needs another. */
  random?: () => number;
}

/**
 * Picks one replica of a server for each request, among those the caller says may take it
 * (`eligible`: indexes into the replica list, in any order). Pure: no clock, no I/O; its only
 * state is the rotation (`round_robin`, `least_connections` ties), the smooth-weighted counters
 * (`weighted`) and the hash ring (affinities), all built from the replicas' ids and weights.
 *
 * - `round_robin`: each eligible replica in turn, weights ignored.
 * - `weighted`: smooth weighted round robin (as nginx does it): over any run of picks each
 *   replica's count follows its weight, without bursts on the heaviest.
 * - `random`: a random replica, with probability proportional to its weight.
 * - `least_connections`: the fewest requests in flight per unit of weight; ties in turn.
 * - `session_affinity`, `user_affinity`: the key hashed onto a ring of `weight × 160` virtual
 *   nodes per replica (scaled down to `MAX_RING_NODES` in all), walking on to the next eligible
 *   replica's node. A replica that leaves moves only the keys that were on it; when it comes
 *   back they return to it.
 */
export class Balancer {
  readonly #strategy: BalanceStrategy;
  readonly #weights: readonly number[];
  readonly #random: () => number;
  /** The index picked last (`round_robin` and ties continue after it). */
  #cursor = -1;
  /** Smooth weighted round robin: each replica's running score. */
  readonly #current: number[];
  /** Hash ring points in ascending order, and the replica each belongs to. */
  readonly #ring: { points: Uint32Array; owners: Uint16Array } | undefined;

  /**
   * `ids` name the replicas on the hash ring (their URLs: a replica keeps its place when others
   * are added or reordered); `weights` are positive integers, one per replica.
   */
  constructor(strategy: BalanceStrategy, replicas: readonly { id: string; weight: number }[], options: BalancerOptions = {}) {
    this.#strategy = strategy;
    this.#weights = replicas.map((r) => Math.max(1, Math.floor(r.weight)));
    this.#random = options.random ?? Math.random;
    this.#current = replicas.map(() => 0);
    this.#ring = strategy === 'session_affinity' || strategy === 'user_affinity' ? buildRing(replicas.map((r) => r.id), this.#weights) : undefined;
  }

  /** Virtual nodes on the hash ring (0 for the strategies that use none). */
  get ringSize(): number {
    return this.#ring?.points.length ?? 0;
  }

  /** The index of the replica to use; `NoReplicaAvailableError` when `eligible` is empty. */
  pick(eligible: readonly number[], context: PickContext = {}): number {
    const candidates = eligible.filter((index) => index >= 0 && index < this.#weights.length);
    if (candidates.length === 0) throw new NoReplicaAvailableError(this.#weights.length);
    const picked = this.#choose(candidates, context);
    this.#cursor = picked;
    return picked;
  }

  #choose(candidates: readonly number[], context: PickContext): number {
    switch (this.#strategy) {
      case 'round_robin':
        return this.#nextInTurn(candidates);
      case 'weighted':
        return this.#smoothWeighted(candidates);
      case 'random':
        return this.#weightedRandom(candidates);
      case 'least_connections':
        return this.#leastLoaded(candidates, context.inFlight ?? []);
      case 'session_affinity':
      case 'user_affinity':
        return context.key === undefined || !this.#ring ? this.#nextInTurn(candidates) : ringLookup(this.#ring, hash32(context.key), new Set(candidates));
    }
  }

  /** The first candidate after the last pick, in index order, wrapping around. */
  #nextInTurn(candidates: readonly number[]): number {
    let best: number | undefined;
    let first: number | undefined;
    for (const index of candidates) {
      if (first === undefined || index < first) first = index;
      if (index > this.#cursor && (best === undefined || index < best)) best = index;
    }
    return best ?? first!;
  }

  #smoothWeighted(candidates: readonly number[]): number {
    let total = 0;
    let best = candidates[0]!;
    for (const index of candidates) {
      const weight = this.#weights[index]!;
      this.#current[index]! += weight;
      total += weight;
      if (this.#current[index]! > this.#current[best]!) best = index;
    }
    this.#current[best]! -= total;
    return best;
  }

  #weightedRandom(candidates: readonly number[]): number {
    const total = candidates.reduce((sum, index) => sum + this.#weights[index]!, 0);
    let point = this.#random() * total;
    for (const index of candidates) {
      point -= this.#weights[index]!;
      if (point < 0) return index;
    }
    return candidates[candidates.length - 1]!;
  }

  #leastLoaded(candidates: readonly number[], inFlight: readonly number[]): number {
    let lowest = Number.POSITIVE_INFINITY;
    let tied: number[] = [];
    for (const index of candidates) {
      const load = (inFlight[index] ?? 0) / this.#weights[index]!;
      if (load < lowest) {
        lowest = load;
        tied = [index];
      } else if (load === lowest) tied.push(index);
    }
    // Idle replicas are all tied: taking them in turn spreads a quiet server's calls too.
    return this.#nextInTurn(tied);
  }
}

/** Each replica's virtual nodes: `VIRTUAL_NODES` per unit of weight, scaled down so that the ring holds at most `MAX_RING_NODES`. */
export function ringNodeCounts(weights: readonly number[]): number[] {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  // One node per replica is set aside, so that the floor of one each cannot go past the cap.
  const perUnit = Math.min(VIRTUAL_NODES, (MAX_RING_NODES - weights.length) / Math.max(1, total));
  return weights.map((weight) => Math.max(1, Math.floor(weight * perUnit)));
}

function buildRing(ids: readonly string[], weights: readonly number[]): { points: Uint32Array; owners: Uint16Array } {
  const counts = ringNodeCounts(weights);
  const entries: { point: number; owner: number }[] = [];
  ids.forEach((id, owner) => {
    for (let node = 0; node < counts[owner]!; node++) entries.push({ point: hash32(`${id}#${node}`), owner });
  });
  // Equal points (rare) are ordered by id so that every gateway builds the same ring.
  entries.sort((a, b) => a.point - b.point || ids[a.owner]!.localeCompare(ids[b.owner]!));
  return { points: Uint32Array.from(entries, (e) => e.point), owners: Uint16Array.from(entries, (e) => e.owner) };
}

/** The owner of the first node at or after `point` (clockwise) that belongs to an eligible replica. */
function ringLookup(ring: { points: Uint32Array; owners: Uint16Array }, point: number, eligible: ReadonlySet<number>): number {
  const { points, owners } = ring;
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle]! < point) low = middle + 1;
    else high = middle;
  }
  for (let step = 0; step < points.length; step++) {
    const owner = owners[(low + step) % points.length]!;
    if (eligible.has(owner)) return owner;
  }
  // Unreachable while `eligible` names a replica on the ring (every replica has nodes).
  throw new NoReplicaAvailableError(eligible.size);
}

/**
 * A 32-bit hash of `text`: FNV-1a over its UTF-16 units, then murmur3's finaliser, which
 * spreads keys that differ in one character (`url#1`, `url#2`) over the whole range.
 */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

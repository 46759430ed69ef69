import type { Redis } from 'ioredis';
import type { BoundedCalls } from './bounded.js';
import { LuaScript } from './lua-script.js';
import type { LeaseStore } from './shared-state.js';

/** Extends the lease when this replica holds it, takes it when nobody does; 1 when held by this replica after. */
const ACQUIRE = new LuaScript(`
  local holder = redis.call('GET', KEYS[1])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
  end
  if holder then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1`);

const RELEASE = new LuaScript(`
  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0`);

/** Leases as keys holding their holder's id, expiring on Redis' clock (`<prefix>lease:<name>`). */
export class RedisLeaseStore implements LeaseStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #replicaId: string;
  readonly #bounded: BoundedCalls;

  constructor(redis: Redis, options: { prefix: string; replicaId: string; bounded: BoundedCalls }) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}lease:`;
    this.#replicaId = options.replicaId;
    this.#bounded = options.bounded;
  }

  async acquire(name: string, ttlMs: number): Promise<boolean> {
    const held = await this.#bounded.run('lease acquire', () => ACQUIRE.run(this.#redis, [this.#prefix + name], [this.#replicaId, Math.max(1, Math.round(ttlMs))]));
    return held === 1;
  }

  async holder(name: string): Promise<string | undefined> {
    return (await this.#bounded.run('lease read', () => this.#redis.get(this.#prefix + name))) ?? undefined;
  }

  async release(name: string): Promise<void> {
    await this.#bounded.run('lease release', () => RELEASE.run(this.#redis, [this.#prefix + name], [this.#replicaId]));
  }
}

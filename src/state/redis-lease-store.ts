import type { Redis } from 'ioredis';
import type { BoundedCalls } from './bounded.js';
import { boundedScripts, type BoundedScriptRunner } from './bounded-script.js';
import { LuaScript } from './lua-script.js';
import { leaseHolder, leaseValue, type LeaseStore } from './shared-state.js';

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

/** Leases as keys holding their holder's id and keeper (`leaseValue`), expiring on Redis' clock (`<prefix>lease:<name>`). */
export class RedisLeaseStore implements LeaseStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #replicaId: string;
  readonly #bounded: BoundedCalls;
  readonly #script: BoundedScriptRunner;

  constructor(redis: Redis, options: { prefix: string; replicaId: string; bounded: BoundedCalls }) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}lease:`;
    this.#replicaId = options.replicaId;
    this.#bounded = options.bounded;
    this.#script = boundedScripts(redis, options.bounded);
  }

  async acquire(name: string, ttlMs: number, keeper?: string): Promise<boolean> {
    const held = await this.#script('lease acquire', ACQUIRE, [this.#prefix + name], [leaseValue(this.#replicaId, keeper), Math.max(1, Math.round(ttlMs))]);
    return held === 1;
  }

  async holder(name: string): Promise<string | undefined> {
    const value = await this.#bounded.run('lease read', () => this.#redis.get(this.#prefix + name));
    return value === null ? undefined : leaseHolder(value);
  }

  async release(name: string, keeper?: string): Promise<void> {
    await this.#script('lease release', RELEASE, [this.#prefix + name], [leaseValue(this.#replicaId, keeper)]);
  }
}

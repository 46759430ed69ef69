import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Lines every script starts with: `now` in milliseconds from Redis' own clock, so replicas whose
 * clocks disagree still agree on what has expired.
 */
export const REDIS_NOW = `
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)`;

/** A Lua script run by its digest, sent whole only when Redis does not know it yet (after a restart or flush). */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}

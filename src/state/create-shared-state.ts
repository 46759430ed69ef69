import type { Redis } from 'ioredis';
import { MemorySharedState } from './memory-state.js';
import { RedisSharedState, type RedisSharedStateOptions } from './redis-state.js';
import type { SharedState } from './shared-state.js';

/** Redis-backed state when there is a Redis (replicas share it), this process's own memory otherwise. */
export function createSharedState(redis: Redis | undefined, options: RedisSharedStateOptions): SharedState {
  return redis ? new RedisSharedState(redis, options) : new MemorySharedState();
}

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { TaskRoute, TaskRouteStore } from '../gateway/task-routes.js';
import { BoundedCalls } from './bounded.js';

/** What Redis holds for a task, checked on the way back in (anything with access to Redis can write it). */
const TaskRouteSchema = z.object({
  server: z.string(),
  upstreamTaskId: z.string(),
  tool: z.string(),
  owner: z.string(),
  expiresAt: z.number(),
  replica: z.string().optional(),
});

// The schema must describe exactly the route: a field added to one fails compilation here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesRoute: Same<z.infer<typeof TaskRouteSchema>, TaskRoute> = true;
void schemaMatchesRoute;

/** The shared state's bounds (`RedisSharedState`): a route is read on every task request, as a session record is. */
const DEFAULT_TIMEOUT_MS = 500;
const DEFAULT_MAX_PENDING_CALLS = 2000;

export interface RedisTaskRouteStoreOptions {
  /** The shared state's key prefix; a route is the key `<prefix>task-route:<gateway task id>`. */
  prefix: string;
  logger: Logger;
  /** Default: 500 ms per call, and 2000 calls left waiting at most, as the shared state's. */
  bounded?: BoundedCalls | undefined;
  now?: (() => number) | undefined;
}

/**
 * Task routes every replica reads: one key per task id, its JSON value expiring with the route
 * (`PX`, counted from now, so that a Redis whose clock differs still keeps it as long). A task
 * created through one replica is then followed through any. Every call is bounded in time
 * (`BoundedCalls`): a Redis that does not answer fails the task request with
 * `SharedStateUnavailableError`, it does not hang it.
 */
export class RedisTaskRouteStore implements TaskRouteStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #bounded: BoundedCalls;
  readonly #now: () => number;

  constructor(redis: Redis, options: RedisTaskRouteStoreOptions) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}task-route:`;
    this.#logger = options.logger;
    this.#bounded = options.bounded ?? new BoundedCalls(DEFAULT_TIMEOUT_MS, DEFAULT_MAX_PENDING_CALLS);
    this.#now = options.now ?? Date.now;
  }

  async put(taskId: string, route: TaskRoute): Promise<void> {
    const ttlMs = Math.ceil(route.expiresAt - this.#now());
    // Already over (a task whose upstream gave it no time): there is nothing to route to.
    if (ttlMs <= 0) return;
    await this.#bounded.run('task route write', () => this.#redis.set(this.#key(taskId), JSON.stringify(route), 'PX', ttlMs));
  }

  async get(taskId: string): Promise<TaskRoute | undefined> {
    const raw = await this.#bounded.run('task route read', () => this.#redis.get(this.#key(taskId)));
    if (raw === null) return undefined;
    const parsed = TaskRouteSchema.safeParse(parseJson(raw));
    if (!parsed.success) {
      this.#logger.warn({ issues: parsed.error.issues.map((i) => i.path.join('.') || 'value') }, 'ignored a task route that does not fit its schema');
      return undefined;
    }
    // Redis' expiry and the route's own agree but for clock skew; the earlier one wins.
    return parsed.data.expiresAt > this.#now() ? parsed.data : undefined;
  }

  async delete(taskId: string): Promise<void> {
    await this.#bounded.run('task route remove', () => this.#redis.del(this.#key(taskId)));
  }

  #key(taskId: string): string {
    return this.#prefix + taskId;
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

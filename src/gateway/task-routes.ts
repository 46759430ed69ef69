import { randomBytes } from 'node:crypto';

/**
 * Where a task the gateway handed out lives, and whose it is. Values are plain data so a
 * shared store (Redis: one key per task id, expiring with `expiresAt`) can hold them as JSON.
 */
export interface TaskRoute {
  /** The upstream server that created the task. */
  server: string;
  /** The task id that server minted; it never reaches the client. */
  upstreamTaskId: string;
  /** The upstream name of the tool whose call created it (the rights a later request needs are that call's). */
  tool: string;
  /** The identity key of the principal whose call created it: the only one who may use it. */
  owner: string;
  /** Epoch milliseconds after which the route is forgotten. */
  expiresAt: number;
  /**
   * The gateway process whose own child process holds the task (a stdio server it runs
   * itself): a request for the task made through another one is sent there. Absent for a
   * server every gateway process reaches alike (over HTTP, or with `processes: one`).
   */
  replica?: string | undefined;
}

/**
 * The task-id table: gateway task id → route. In memory for one process, in Redis when replicas
 * route each other's tasks (`state/redis-task-routes.ts`); every method is asynchronous for that.
 */
export interface TaskRouteStore {
  put(taskId: string, route: TaskRoute): Promise<void>;
  /** The route, or undefined when unknown or expired. */
  get(taskId: string): Promise<TaskRoute | undefined>;
  delete(taskId: string): Promise<void>;
}

/**
 * How long a route is kept for a task whose upstream gave no lifetime (`ttlMs: null`, "keep it
 * as long as you like"): a day, as a bound on what a process holds for tasks nobody asks about.
 */
export const DEFAULT_TASK_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * When a route for a task created now expires: with the upstream's `ttlMs` (counted from
 * creation, so it never ends before the upstream's own record), else the default.
 */
export function routeExpiry(ttlMs: number | null | undefined, now: number): number {
  return now + (typeof ttlMs === 'number' && Number.isFinite(ttlMs) && ttlMs >= 0 ? ttlMs : DEFAULT_TASK_TTL_MS);
}

/**
 * A fresh task id for a client: 128 random bits. Upstreams mint their own ids (often counters),
 * and two of them can mint the same one; a gateway id maps to one server's task, so ids never
 * collide across upstreams, cannot be guessed, and say nothing of the upstream's scheme.
 */
export function mintTaskId(): string {
  return `task-${randomBytes(16).toString('base64url')}`;
}

/**
 * The table in one process. Expired routes are dropped when read, and swept on writes once
 * the table has doubled since the last sweep, so a gateway needs no timer for them and the
 * table stays proportional to the live tasks.
 */
export class InMemoryTaskRouteStore implements TaskRouteStore {
  readonly #routes = new Map<string, TaskRoute>();
  readonly #now: () => number;
  #sweepAt = 1024;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async put(taskId: string, route: TaskRoute): Promise<void> {
    this.#routes.set(taskId, route);
    if (this.#routes.size >= this.#sweepAt) {
      const now = this.#now();
      for (const [id, r] of this.#routes) if (r.expiresAt <= now) this.#routes.delete(id);
      this.#sweepAt = Math.max(1024, this.#routes.size * 2);
    }
  }

  async get(taskId: string): Promise<TaskRoute | undefined> {
    const route = this.#routes.get(taskId);
    if (route && route.expiresAt <= this.#now()) {
      this.#routes.delete(taskId);
      return undefined;
    }
    return route;
  }

  async delete(taskId: string): Promise<void> {
    this.#routes.delete(taskId);
  }

  /** Routes held, expired ones not yet swept included. */
  get size(): number {
    return this.#routes.size;
  }
}

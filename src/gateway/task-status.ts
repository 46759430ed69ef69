import type { Logger } from 'pino';
import { isTerminal, type TaskFields } from './task-wire.js';

/** Bounds on how often a watched task is asked about, whatever interval its upstream suggests. */
export const MIN_POLL_MS = 250;
export const MAX_POLL_MS = 30_000;
/** The interval when the upstream suggested none. */
export const DEFAULT_POLL_MS = 1_000;

export type TaskListener = (task: TaskFields) => void;

/** Asks the task's upstream for it now: the task as the client would read it, or undefined when it is gone. */
export type TaskPoll = (taskId: string) => Promise<TaskFields | undefined>;

interface Watched {
  listeners: Set<TaskListener>;
  /** What the listeners last heard, to tell a change. */
  heard: string | undefined;
  intervalMs: number;
  timer: NodeJS.Timeout | undefined;
  polling: boolean;
}

/**
 * Status changes of the tasks that listen streams name, for `notifications/tasks`. The SDK 2.4
 * client can put no task ids in an upstream's `subscriptions/listen` filter, and a server need
 * not send these notifications at all, so the gateway does not wait for upstreams to: while a
 * stream watches a task that is not finished, the gateway asks its upstream (`tasks/get`) at the
 * interval the task suggests, and passes on what changed. What a client's own `tasks/get` (or
 * the creating call) brings back through the gateway counts as well, at no extra cost.
 *
 * Listeners are registered per gateway task id by the listen streams of the task's owner only
 * (see `TaskListen`), so nobody else hears about it.
 */
export class TaskStatusFeed {
  readonly #watched = new Map<string, Watched>();
  readonly #poll: TaskPoll;
  readonly #logger: Logger;
  #closed = false;

  constructor(poll: TaskPoll, logger: Logger) {
    this.#poll = poll;
    this.#logger = logger;
  }

  /**
   * Calls `listener` with the task now (after asking its upstream) and on every change until
   * it finishes; returns the function that stops listening.
   */
  watch(taskId: string, listener: TaskListener): () => void {
    let watched = this.#watched.get(taskId);
    if (!watched) {
      watched = { listeners: new Set(), heard: undefined, intervalMs: DEFAULT_POLL_MS, timer: undefined, polling: false };
      this.#watched.set(taskId, watched);
    }
    watched.listeners.add(listener);
    // A new listener hears the task as it is now, so a change it missed is not lost.
    watched.heard = undefined;
    this.#schedule(taskId, watched, 0);
    return () => {
      const current = this.#watched.get(taskId);
      if (!current) return;
      current.listeners.delete(listener);
      if (current.listeners.size === 0) this.#forget(taskId, current);
    };
  }

  /** A task as the gateway just relayed it (created, read): listeners hear it when it changed. */
  observe(task: TaskFields): void {
    const watched = this.#watched.get(task.taskId);
    if (!watched) return;
    if (typeof task.pollIntervalMs === 'number') watched.intervalMs = clampInterval(task.pollIntervalMs);
    const key = `${task.status}\u0000${task.lastUpdatedAt}\u0000${task.statusMessage ?? ''}`;
    if (key === watched.heard) return;
    watched.heard = key;
    for (const listener of [...watched.listeners]) listener(task);
    if (isTerminal(task.status)) this.#stopPolling(watched);
  }

  /** Stops every poll (at shutdown). */
  close(): void {
    this.#closed = true;
    for (const watched of this.#watched.values()) this.#stopPolling(watched);
    this.#watched.clear();
  }

  /** Tasks being watched (for tests and metrics). */
  get size(): number {
    return this.#watched.size;
  }

  #schedule(taskId: string, watched: Watched, delayMs: number): void {
    if (this.#closed || watched.polling) return;
    if (watched.timer) clearTimeout(watched.timer);
    watched.timer = setTimeout(() => void this.#pollOnce(taskId, watched), delayMs);
    watched.timer.unref();
  }

  async #pollOnce(taskId: string, watched: Watched): Promise<void> {
    watched.timer = undefined;
    if (this.#watched.get(taskId) !== watched) return;
    watched.polling = true;
    let task: TaskFields | undefined;
    let failed = false;
    try {
      task = await this.#poll(taskId);
    } catch (error) {
      // Asked again at the next interval; a listener has nothing to hear meanwhile.
      failed = true;
      this.#logger.debug({ err: error, task: taskId }, 'could not ask an upstream about a watched task');
    } finally {
      watched.polling = false;
    }
    if (this.#watched.get(taskId) !== watched) return;
    if (task) this.observe(task);
    // Gone (expired, or its server removed): nothing more will change. A failed ask is retried.
    if ((!task && !failed) || (task && isTerminal(task.status))) return;
    this.#schedule(taskId, watched, watched.intervalMs);
  }

  #stopPolling(watched: Watched): void {
    if (watched.timer) clearTimeout(watched.timer);
    watched.timer = undefined;
  }

  #forget(taskId: string, watched: Watched): void {
    this.#stopPolling(watched);
    this.#watched.delete(taskId);
  }
}

function clampInterval(ms: number): number {
  return Math.min(MAX_POLL_MS, Math.max(MIN_POLL_MS, Math.round(ms)));
}

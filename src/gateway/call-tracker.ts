import type { DownstreamCall } from './downstream-call.js';

/**
 * Which downstream requests are in flight on each upstream. An upstream shares one connection
 * among all sessions, and its server-to-client requests and log messages carry no reference
 * to the request that caused them, so they are attributed to the in-flight calls: to the one
 * session with calls there, or to nobody when calls of several sessions are in flight, so a
 * session never sees a message that may belong to another.
 */
export class CallTracker {
  readonly #inFlight = new Map<string, Set<DownstreamCall>>();
  #size = 0;
  /** Resolvers of `idle()` promises, settled when the count next drops to zero. */
  #idleWaiters: Array<() => void> = [];

  /** Upstream requests in flight, all servers together (graceful shutdown waits for 0). */
  get size(): number {
    return this.#size;
  }

  /** Records `call` as in flight on `server`; the returned function ends it (a second call does nothing). */
  begin(server: string, call: DownstreamCall): () => void {
    let calls = this.#inFlight.get(server);
    if (!calls) this.#inFlight.set(server, (calls = new Set()));
    if (calls.has(call)) return () => {};
    calls.add(call);
    this.#size++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      calls.delete(call);
      if (calls.size === 0 && this.#inFlight.get(server) === calls) this.#inFlight.delete(server);
      if (--this.#size === 0) this.#settleIdle();
    };
  }

  /**
   * Resolves once no call is in flight: at once when none is, else when the last one ends.
   * Shutdown races it against its grace period instead of polling `size`.
   */
  idle(): Promise<void> {
    if (this.#size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Waits until no call is in flight or `ms` have passed, whichever comes first; true when the
   * calls ended in time. The timer is cleared either way, so it never holds the process open.
   */
  async idleWithin(ms: number): Promise<boolean> {
    if (this.#size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, ms));
    });
    try {
      return await Promise.race([this.idle().then(() => true as const), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  #settleIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * The call an upstream message belongs to: `undefined` when none is in flight, `'ambiguous'`
   * when several sessions have one. Calls without a session (2026-07-28 requests, REST, the
   * CLI) are each their own: two of them in flight are as ambiguous as two sessions. With
   * `principal`, only that principal's calls count (a user's own instance of a server).
   */
  attribute(server: string, principal?: string): DownstreamCall | 'ambiguous' | undefined {
    const calls = this.#inFlight.get(server);
    if (!calls || calls.size === 0) return undefined;
    let chosen: DownstreamCall | undefined;
    for (const call of calls) {
      if (principal !== undefined && call.principal !== principal) continue;
      if (chosen && (chosen.sessionId === undefined || chosen.sessionId !== call.sessionId)) return 'ambiguous';
      chosen = call; // the latest call of the one session
    }
    return chosen;
  }
}

/**
 * Requests sent on one connection and not yet answered. A connection that a config change
 * replaces is stopped once its requests have ended (or their time is up), so that the calls it
 * carries finish rather than fail with "connection closed".
 */
export class InFlightRequests {
  #count = 0;
  #idle: (() => void)[] = [];

  get count(): number {
    return this.#count;
  }

  /** Counts one request; the returned function ends it (a second call does nothing). */
  begin(): () => void {
    this.#count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.#count > 0) return;
      const waiters = this.#idle;
      this.#idle = [];
      for (const resolve of waiters) resolve();
    };
  }

  /** True once no request is in flight; false when `ms` pass first. The timer never holds the process open. */
  async idleWithin(ms: number): Promise<boolean> {
    if (this.#count === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    let waiter: (() => void) | undefined;
    try {
      return await new Promise<boolean>((resolve) => {
        waiter = () => resolve(true);
        this.#idle.push(waiter);
        timer = setTimeout(() => resolve(false), Math.max(0, ms));
        timer.unref();
      });
    } finally {
      clearTimeout(timer);
      this.#idle = this.#idle.filter((w) => w !== waiter);
    }
  }
}

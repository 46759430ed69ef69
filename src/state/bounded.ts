import { ReplyError } from 'ioredis';
import { withTimeout } from '../limits/with-timeout.js';
import { SharedStateUnavailableError } from './shared-state.js';

/**
 * Error replies that say Redis cannot serve right now rather than that the call is wrong: still
 * loading its data, a script running too long, a replica written to (after a failover) or cut from its primary.
 */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN)\b/;

/**
 * Runs Redis calls within a time bound, and with a cap on the calls still waiting for an answer.
 *
 * A timed-out command cannot be withdrawn: it stays in the client's queue until Redis answers or
 * the connection drops. Against a Redis that accepts connections and never answers, every request
 * would leave one more command behind; past `maxPending` such calls, new ones are refused at once
 * instead of piling up in memory.
 */
export class BoundedCalls {
  readonly #timeoutMs: number;
  readonly #maxPending: number;
  #pending = 0;

  constructor(timeoutMs: number, maxPending: number) {
    this.#timeoutMs = timeoutMs;
    this.#maxPending = maxPending;
  }

  /**
   * `work()`, or a `SharedStateUnavailableError` naming `what` when it does not settle in time or
   * fails to reach Redis, or Redis answers that it cannot serve now (`UNAVAILABLE_REPLY`). Any
   * other error Redis answered with (`ReplyError`: a wrong type, an invalid argument, a failing
   * script, a refused login) is rethrown as it is: Redis is there, and the call or the setup is at fault.
   *
   * `onUnanswered` is given the call when it failed without an answer from Redis: it may run in
   * Redis all the same (a timed-out command stays queued; one sent before the connection dropped
   * may have run), and its caller may need to undo it once it settles.
   */
  async run<T>(what: string, work: () => Promise<T>, onUnanswered?: (call: Promise<T>) => void): Promise<T> {
    if (this.#pending >= this.#maxPending) {
      throw new SharedStateUnavailableError(`Redis did not answer ${what}: ${this.#pending} earlier calls are still waiting`);
    }
    this.#pending++;
    const call = Promise.resolve().then(work);
    // Counted until Redis (or the connection's end) settles it, not until the bound gives up on it.
    call.then(
      () => this.#pending--,
      () => this.#pending--,
    );
    try {
      return await withTimeout(call, this.#timeoutMs);
    } catch (error) {
      if (error instanceof ReplyError && !UNAVAILABLE_REPLY.test((error as Error).message)) throw error;
      onUnanswered?.(call);
      const reason = (error as Error).message;
      throw new SharedStateUnavailableError(`Redis did not answer ${what} (${reason})`, { cause: error });
    }
  }
}

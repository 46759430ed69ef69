import { withTimeout } from '../limits/with-timeout.js';
import { SharedStateUnavailableError } from './shared-state.js';

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

  /** `work()`, or a `SharedStateUnavailableError` naming `what` when it fails or does not settle in time. */
  async run<T>(what: string, work: () => Promise<T>): Promise<T> {
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
      const reason = (error as Error).message;
      throw new SharedStateUnavailableError(`Redis did not answer ${what} (${reason})`, { cause: error });
    }
  }
}

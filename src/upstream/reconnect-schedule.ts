import { backoffDelay, failuresAfterLoss } from './backoff.js';

export interface ReconnectPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** Failed attempts in a row before giving up (0 = never). */
  maxAttempts: number;
}

/**
 * When a connection tries again: after a delay that grows with each failure in a row
 * (`backoffDelay`), until `maxAttempts` of them. The failures are counted across a connection
 * that did not stay up long (`failuresAfterLoss`), so a server that crashes at once after
 * every start still runs out of attempts.
 */
export class ReconnectSchedule {
  #failures = 0;
  #everConnected = false;
  #timer: NodeJS.Timeout | undefined;
  #nextRetryAt: Date | undefined;

  constructor(
    private readonly policy: ReconnectPolicy,
    private readonly now: () => number,
  ) {}

  /** Failed attempts in a row, as the restart budget counts them. */
  get failures(): number {
    return this.#failures;
  }

  get nextRetryAt(): Date | undefined {
    return this.#nextRetryAt;
  }

  /** Whether an attempt starting now is a restart: the connection was ready once, or has failed. */
  get restarting(): boolean {
    return this.#everConnected || this.#failures > 0;
  }

  /** Whether the budget is spent: no retry should be armed. */
  get exhausted(): boolean {
    return this.policy.maxAttempts > 0 && this.#failures >= this.policy.maxAttempts;
  }

  /** Arms the next attempt: `due` runs after the backoff delay. The timer never holds the process open. */
  arm(due: () => void): void {
    const delay = backoffDelay(this.#failures, this.policy);
    this.#failures++;
    this.#nextRetryAt = new Date(this.now() + delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      due();
    }, delay);
    this.#timer.unref();
  }

  /** No attempt is coming (the budget is spent). */
  gaveUp(): void {
    this.#nextRetryAt = undefined;
  }

  /** The connection became ready. The failure count stays until it has been up a while (see `lost`). */
  connected(): void {
    this.#nextRetryAt = undefined;
    this.#everConnected = true;
  }

  /** The connection was lost; `connectedAtMs` is when it became ready, undefined if it never did. */
  lost(connectedAtMs: number | undefined): void {
    this.#failures = failuresAfterLoss(this.#failures, connectedAtMs, this.now());
  }

  /** Cancels an armed attempt. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

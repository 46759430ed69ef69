export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
}

/**
 * A per-upstream circuit breaker. After `failureThreshold` upstream faults in a row it opens:
 * calls fail fast instead of waiting for timeouts. After `cooldownMs` one call is let through
 * as a probe (half-open); its success closes the breaker, its failure opens it again.
 *
 * A breaker opened because the upstream could not be reached closes as soon as the upstream is
 * seen answering again (`reachable()`: a health ping, a reconnect), not only after its full
 * cooldown: an upstream restart of a few seconds otherwise cost every caller the whole
 * cooldown of fast failures. One opened by slow answers (timeouts) waits for its probe, since
 * an upstream that answers pings can still time out on calls.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probeInFlight = false;
  /** Whether the failures that opened the breaker were all "could not reach the upstream". */
  #onlyUnreachable = true;
  readonly #options: BreakerOptions;
  readonly #now: () => number;

  constructor(options: BreakerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#options.cooldownMs) return 'half-open';
    return this.#state;
  }

  /** Seconds until a probe is allowed, when open. */
  get retryAfterSeconds(): number {
    return Math.max(0, Math.ceil((this.#openedAt + this.#options.cooldownMs - this.#now()) / 1000));
  }

  /** Whether `allow()` would let a call through now, without taking the probe. */
  get allowing(): boolean {
    const state = this.state;
    return state === 'closed' || (state === 'half-open' && !this.#probeInFlight);
  }

  /** Whether a call may go ahead now; in half-open state only one probe at a time. */
  allow(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.#probeInFlight) return false;
    this.#probeInFlight = true;
    return true;
  }

  success(): void {
    this.#state = 'closed';
    this.#failures = 0;
    this.#probeInFlight = false;
    this.#onlyUnreachable = true;
  }

  /**
   * An upstream fault: `unreachable` when the upstream could not be reached at all (refused,
   * closed), `fault` when it was reached but failed (timed out, answered garbage).
   */
  failure(kind: 'unreachable' | 'fault' = 'fault'): void {
    this.#probeInFlight = false;
    this.#failures++;
    if (kind === 'fault') this.#onlyUnreachable = false;
    if (this.#state !== 'closed' || this.#failures >= this.#options.failureThreshold) {
      this.#state = 'open';
      this.#openedAt = this.#now();
    }
  }

  /** A call that ended without telling anything about the upstream's health (e.g. cancelled). */
  release(): void {
    this.#probeInFlight = false;
  }

  /** The upstream was seen answering; closes a breaker that only unreachability opened. */
  reachable(): void {
    if (this.#onlyUnreachable) this.success();
  }

  reset(): void {
    this.success();
  }
}

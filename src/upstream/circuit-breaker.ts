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
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probeInFlight = false;
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
  }

  failure(): void {
    this.#probeInFlight = false;
    this.#failures++;
    if (this.#state !== 'closed' || this.#failures >= this.#options.failureThreshold) {
      this.#state = 'open';
      this.#openedAt = this.#now();
    }
  }

  /** A call that ended without telling anything about the upstream's health (e.g. cancelled). */
  release(): void {
    this.#probeInFlight = false;
  }

  reset(): void {
    this.success();
  }
}

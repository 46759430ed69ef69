import type { Logger } from 'pino';
import { clientAddressKey } from './client-address.js';
import { RateLimitedError, RateLimiterUnavailableError } from './errors.js';
import { LogSampler } from './log-sampler.js';
import type { RateLimiter } from './rate-limiter.js';

export interface FailedAuthSettings {
  /**
   * Failed authentications accepted per client address (`clientAddress`: the one a trusted proxy
   * forwarded, else the peer's) per window; 0 turns the throttle off.
   */
  failedAuthPerAddress: number;
  windowSeconds: number;
}

/** Addresses tracked at most in each local map; beyond it the oldest is forgotten (and every address is checked). */
const MAX_TRACKED = 10_000;

/**
 * Refuses requests from a client address that failed authentication too often, before its
 * credentials are checked, so guessing tokens or keys is slow and a flood of bad ones costs a
 * map lookup each. Failures are counted in the gateway's limiter (memory, or Redis shared by
 * replicas).
 *
 * The limiter is asked only about addresses that failed here within the last two windows (the
 * sliding window reaches into the previous one): the requests of everyone else cost nothing
 * extra. Behind several replicas an address may thus get one more failure per replica before
 * each one starts asking. An address found over the limit is refused locally until its retry
 * time, without asking again.
 */
export class FailedAuthThrottle {
  readonly #suspects = new Map<string, number>();
  readonly #blocked = new Map<string, number>();
  readonly #failureLog: LogSampler;
  readonly #refusalLog: LogSampler;
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(
    private readonly limiter: RateLimiter,
    settings: FailedAuthSettings,
    private readonly deps: {
      logger: Logger;
      /** Told of every request refused by the throttle (for metrics). */
      onThrottled?: (() => void) | undefined;
      now?: (() => number) | undefined;
    },
  ) {
    this.#limit = settings.failedAuthPerAddress;
    this.#windowMs = settings.windowSeconds * 1000;
    this.#now = deps.now ?? Date.now;
    this.#failureLog = new LogSampler(this.#windowMs, this.#now);
    this.#refusalLog = new LogSampler(this.#windowMs, this.#now);
  }

  /**
   * Throws `RateLimitedError` (scope `address`) when `address` has used up its failures for the
   * window, or `RateLimiterUnavailableError` when the limiter cannot tell under failClosed.
   */
  async check(address: string): Promise<void> {
    if (this.#limit <= 0) return;
    const key = clientAddressKey(address);
    const now = this.#now();
    const blockedUntil = this.#blocked.get(key);
    if (blockedUntil !== undefined) {
      if (blockedUntil > now) throw this.#refuse(address, key, blockedUntil - now);
      this.#blocked.delete(key);
    }
    const suspectUntil = this.#suspects.get(key);
    // With the map full, an address may have been pushed out by failures from many others (one
    // attacker holding a large IPv6 range): every address is then asked about.
    const crowded = this.#suspects.size >= MAX_TRACKED;
    if (suspectUntil === undefined && !crowded) return;
    if (suspectUntil !== undefined && suspectUntil <= now) {
      this.#suspects.delete(key);
      if (!crowded) return;
    }
    const decision = await this.limiter.peek(limiterKey(key), this.#limit, this.#windowMs);
    if (decision.allowed) return;
    if (decision.unavailable) throw new RateLimiterUnavailableError('address');
    const waitMs = decision.retryAfterSeconds * 1000;
    remember(this.#blocked, key, now + waitMs);
    throw this.#refuse(address, key, waitMs);
  }

  /**
   * Counts a failed authentication from `address`. Logged for the first failure per address
   * per window, with the number left out since the previous line; `reason` must not contain
   * the credential.
   */
  async failed(address: string, reason: string): Promise<void> {
    if (this.#limit <= 0) return;
    const key = clientAddressKey(address);
    remember(this.#suspects, key, this.#now() + 2 * this.#windowMs);
    const skipped = this.#failureLog.sample(key);
    if (skipped !== undefined) {
      this.deps.logger.warn({ address, reason, ...(skipped > 0 ? { failuresSinceLastLine: skipped } : {}) }, 'authentication failed (first failure from this address in the window)');
    }
    // When Redis does not answer the request is still refused (it failed authentication); the
    // failure is simply not counted.
    await this.limiter.hit(limiterKey(key), this.#limit, this.#windowMs);
  }

  #refuse(address: string, key: string, waitMs: number): RateLimitedError {
    this.deps.onThrottled?.();
    const skipped = this.#refusalLog.sample(key);
    if (skipped !== undefined) {
      this.deps.logger.warn(
        { address, limit: this.#limit, windowSeconds: this.#windowMs / 1000, ...(skipped > 0 ? { refusedSinceLastLine: skipped } : {}) },
        'too many failed authentications from this address; its requests are refused until the window passes',
      );
    }
    return new RateLimitedError('address', Math.max(1, Math.ceil(waitMs / 1000)), `failed authentications from ${key}`);
  }
}

function limiterKey(addressKey: string): string {
  return `fa:${addressKey}`;
}

/** Sets `key` as the newest entry, forgetting the oldest one when the map is full. */
function remember(map: Map<string, number>, key: string, value: number): void {
  map.delete(key);
  if (map.size >= MAX_TRACKED) map.delete(map.keys().next().value!);
  map.set(key, value);
}

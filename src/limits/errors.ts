import { ConfluxError, type ErrorKind } from '../errors.js';

/** What a rate limit counts: a principal's requests, an upstream's calls, or an address's failed authentications. */
export type RateLimitScope = 'principal' | 'server' | 'address';

/** A request refused by a rate limit; carries when to try again. */
export class RateLimitedError extends ConfluxError {
  readonly kind: ErrorKind = 'rate_limited';

  constructor(
    readonly scope: RateLimitScope,
    readonly retryAfterSeconds: number,
    what: string,
  ) {
    super(`rate limit exceeded for ${what}; retry after ${retryAfterSeconds}s`);
    this.name = 'RateLimitedError';
  }

  override clientDetails(): { retryAfter: number; scope: RateLimitScope } {
    return { retryAfter: this.retryAfterSeconds, scope: this.scope };
  }
}

/** Seconds a client is told to wait when the limiter cannot decide. */
const UNAVAILABLE_RETRY_SECONDS = 1;

/**
 * A request refused because the shared limiter (Redis) did not answer and the gateway is set
 * to refuse then (`gateway.rateLimit.onRedisError: failClosed`). A kind of rate limit refusal,
 * so every surface that passes those on to the client does so for this one too (tool calls
 * refuse it instead of reporting an upstream fault); the HTTP edges answer it with 503.
 */
export class RateLimiterUnavailableError extends RateLimitedError {
  override readonly kind: ErrorKind = 'unavailable';
  override readonly code = 'rate_limiter_unavailable';

  constructor(scope: RateLimitScope) {
    super(scope, UNAVAILABLE_RETRY_SECONDS, '');
    this.name = 'RateLimiterUnavailableError';
    this.message = 'the rate limiter (Redis) does not answer, and the gateway refuses requests until it does (gateway.rateLimit.onRedisError: failClosed)';
  }
}

/** A request refused by a capacity limit (sessions, concurrent calls, message size). */
export class LimitExceededError extends ConfluxError {
  readonly kind: ErrorKind = 'limit_exceeded';

  constructor(message: string) {
    super(message);
    this.name = 'LimitExceededError';
  }
}

/** A request refused by a rate limit; carries when to try again. */
export class RateLimitedError extends Error {
  constructor(
    readonly scope: 'principal' | 'server',
    readonly retryAfterSeconds: number,
    what: string,
  ) {
    super(`rate limit exceeded for ${what}; retry after ${retryAfterSeconds}s`);
    this.name = 'RateLimitedError';
  }
}

/** A request refused by a capacity limit (sessions, concurrent calls, message size). */
export class LimitExceededError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LimitExceededError';
  }
}

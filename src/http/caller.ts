import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { RateLimitedError } from '../limits/errors.js';
import type { RateLimits } from '../limits/rate-limits.js';

/** Who is making a request, as far as the gateway knows. */
export interface Caller {
  /** The authenticated principal, or `anonymous`. */
  principal: string;
  /** What rate limits count against: the principal, or the client address when anonymous. */
  rateKey: string;
  address: string;
}

export type CallerEnv = { Variables: { caller: Caller } };

/** The client's address; `unknown` for in-process requests (tests calling `app.request`). */
export function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Identifies the caller (anonymous until authentication is configured) and applies the
 * per-principal rate limit; `refuse` shapes the 429 for its surface (JSON-RPC or REST).
 */
export function callerMiddleware(rateLimits: RateLimits | undefined, refuse: (c: Context, error: RateLimitedError) => Response): MiddlewareHandler<CallerEnv> {
  return async (c, next) => {
    const address = remoteAddress(c);
    const caller: Caller = { principal: 'anonymous', rateKey: `ip:${address}`, address };
    c.set('caller', caller);
    try {
      await rateLimits?.principal(caller.rateKey);
    } catch (error) {
      if (error instanceof RateLimitedError) return refuse(c, error);
      throw error;
    }
    await next();
  };
}

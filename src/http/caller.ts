import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import type { AccessControl } from '../auth/access-control.js';
import type { Access } from '../auth/access-policy.js';
import { AuthFailure } from '../auth/auth-failure.js';
import type { Authenticator } from '../auth/authenticator.js';
import { clientAddress, clientAddressKey, type ProxyList } from '../limits/client-address.js';
import { RateLimitedError } from '../limits/errors.js';
import type { RateLimits } from '../limits/rate-limits.js';

/** Who is making a request, as far as the gateway knows. */
export interface Caller {
  /** The authenticated principal's id, or `anonymous` without authentication. */
  principal: string;
  /** What the principal may use, evaluated for this request. */
  access: Access;
  /** What rate limits count against: the principal, or the client address when anonymous. */
  rateKey: string;
  /** The client's address: the socket peer's, or the one a trusted proxy forwarded. */
  address: string;
}

export type CallerEnv = { Variables: { caller: Caller } };

export interface CallerDeps {
  authenticator: Authenticator;
  accessControl: AccessControl;
  rateLimits?: RateLimits | undefined;
  /** This gateway's resource URI as configured; otherwise the request's own origin + `/mcp`. */
  resource?: string | undefined;
  /** With OAuth on, challenges point clients at the protected-resource metadata (RFC 9728). */
  oauth?: { scopes: readonly string[] } | undefined;
  /** Told of every refused authentication (for metrics). */
  onFailure?: ((failure: AuthFailure) => void) | undefined;
  /** Peers whose `X-Forwarded-For` names the client (`gateway.trustedProxies`). */
  trustedProxies?: ProxyList | undefined;
}

/** The client's address; `unknown` for in-process requests (tests calling `app.request`). */
export function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The resource URI a request addresses (RFC 8707): the expected audience of its token. */
export function resourceUri(c: Context, configured: string | undefined): string {
  return configured ?? `${new URL(c.req.url).origin}/mcp`;
}

/** Where the RFC 9728 document for `resource` is served: the path-inserted well-known URL. */
export function resourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}`;
}

/** The `WWW-Authenticate` value for a refused request (RFC 6750 §3, RFC 9728 §5.1). */
export function bearerChallenge(failure: AuthFailure, resource: string, oauth: CallerDeps['oauth']): string {
  const params: string[] = [];
  if (oauth) params.push(`resource_metadata="${resourceMetadataUrl(resource)}"`);
  if (oauth?.scopes.length) params.push(`scope="${oauth.scopes.join(' ')}"`);
  if (failure.code) params.push(`error="${failure.code}"`, `error_description="${failure.message.replace(/["\\]/g, "'")}"`);
  return params.length ? `Bearer ${params.join(', ')}` : 'Bearer realm="conflux"';
}

/**
 * Authenticates every request (see `Authenticator` for what it remembers), evaluates the
 * caller's rights and applies the per-principal rate limit. `refuse` shapes refusals for its
 * surface (JSON-RPC or REST); challenges carry `WWW-Authenticate`.
 */
export function callerMiddleware(deps: CallerDeps, refuse: (c: Context, error: RateLimitedError | AuthFailure) => Response): MiddlewareHandler<CallerEnv> {
  return async (c, next) => {
    const peer = remoteAddress(c);
    const address = clientAddress(peer, c.req.header('x-forwarded-for'), deps.trustedProxies);
    const resource = resourceUri(c, deps.resource);
    let caller: Caller;
    try {
      const principal = await deps.authenticator.authenticate({ headers: c.req.raw.headers, address: peer, client: address, resource });
      caller = {
        principal: principal.id,
        access: deps.accessControl.accessFor(principal),
        rateKey: deps.authenticator.enabled ? `principal:${principal.id}` : `ip:${clientAddressKey(address)}`,
        address,
      };
    } catch (error) {
      // Refused before its credentials were looked at: its address failed too often (or, under
      // failClosed, the limiter cannot tell).
      if (error instanceof RateLimitedError) return refuse(c, error);
      if (!(error instanceof AuthFailure)) throw error;
      deps.onFailure?.(error);
      const response = refuse(c, error);
      if (error.status !== 503) response.headers.set('WWW-Authenticate', bearerChallenge(error, resource, deps.oauth));
      return response;
    }
    c.set('caller', caller);
    try {
      await deps.rateLimits?.principal(caller.rateKey);
    } catch (error) {
      if (error instanceof RateLimitedError) return refuse(c, error);
      throw error;
    }
    await next();
  };
}

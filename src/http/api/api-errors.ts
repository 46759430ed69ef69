import type { Context } from 'hono';
import type { Logger } from 'pino';
import { ProtocolErrorCode } from '@modelcontextprotocol/server';
import { AccessRuleError } from '../../auth/access-control.js';
import { AccessDeniedError } from '../../auth/access-policy.js';
import { ApiKeyError } from '../../auth/api-keys.js';
import { AuthFailure } from '../../auth/auth-failure.js';
import { LimitExceededError, RateLimitedError, RateLimiterUnavailableError } from '../../limits/errors.js';
import { HiddenToolError, isProtocolError, reportIncident, UnknownToolError } from '../../gateway/error-mapping.js';
import { RegistryError } from '../../registry/errors.js';
import { UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from '../../upstream/errors.js';
import { UpstreamAuthError } from '../../upstream/auth/upstream-auth.js';

/** An error the REST API reports as `{error: {code, message, details}}` with `status`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * The one mapping from failures to REST responses. An error no rule knows is a 500 that
 * names only an incident id; the error itself goes to `logger` under that id.
 */
export function apiErrorResponse(c: Context, error: unknown, logger: Pick<Logger, 'error'>): Response {
  const { status, code, message, details } = toApiError(error) ?? internalError(error, logger, { method: c.req.method, path: c.req.path });
  if (error instanceof RateLimitedError) c.header('Retry-After', String(error.retryAfterSeconds));
  return c.json({ error: { code, message, ...(details === undefined ? {} : { details }) } }, status as 400);
}

/** `error` as the REST API reports it; undefined when it is unexpected (see `isExpectedError`). */
function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof RateLimiterUnavailableError) return new ApiError(503, 'rate_limiter_unavailable', error.message);
  if (error instanceof RateLimitedError) return new ApiError(429, 'rate_limited', error.message, { retryAfter: error.retryAfterSeconds, scope: error.scope });
  if (error instanceof LimitExceededError) return new ApiError(429, 'limit_exceeded', error.message);
  if (error instanceof AuthFailure) return new ApiError(error.status, error.code ?? 'unauthorized', error.message);
  // Answered alike, so a refusal never confirms that a name exists (the message matches the tool routes' own 404).
  if (error instanceof HiddenToolError || error instanceof UnknownToolError) return new ApiError(404, 'not_found', `no tool named "${error.tool}"`);
  if (error instanceof AccessDeniedError) return new ApiError(403, 'forbidden', error.message);
  if (error instanceof AccessRuleError) return new ApiError(error.status, error.status === 404 ? 'not_found' : 'no_database', error.message);
  if (error instanceof ApiKeyError) return new ApiError(409, error.code, error.message);
  if (error instanceof RegistryError) return new ApiError(error.status, error.code, error.message, error.details);
  if (error instanceof UpstreamTimeoutError) return new ApiError(504, 'upstream_timeout', error.message, { server: error.server });
  if (error instanceof UpstreamUnavailableError || error instanceof UpstreamConnectionLostError) {
    return new ApiError(502, 'upstream_unavailable', error.message, { server: error.server });
  }
  if (error instanceof UpstreamAuthError) {
    // The URL is the caller's own: it was made for this caller's authorisation.
    if (error.kind === 'authorization-required') return new ApiError(403, 'authorization_required', error.message, { server: error.server, authorizationUrl: error.authorizationUrl });
    return new ApiError(502, error.kind === 'misconfigured' ? 'upstream_misconfigured' : 'upstream_auth_failed', error.message, { server: error.server });
  }
  if (isProtocolError(error)) {
    // An upstream (or the gateway) refused the request's content: the caller's to fix.
    if (error.code === ProtocolErrorCode.InvalidParams || error.code === ProtocolErrorCode.InvalidRequest) return new ApiError(400, 'invalid_request', error.message);
    if (error.code === ProtocolErrorCode.MethodNotFound) return new ApiError(404, 'not_found', error.message);
    return new ApiError(502, 'upstream_error', error.message, { code: error.code });
  }
  return undefined;
}

function internalError(error: unknown, logger: Pick<Logger, 'error'>, context: Record<string, unknown>): ApiError {
  const { incident } = reportIncident(error, logger, context);
  return new ApiError(500, 'internal', `Internal server error (incident ${incident})`, { incident });
}

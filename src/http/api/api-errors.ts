import type { Context } from 'hono';
import type { Logger } from 'pino';
import { ProtocolErrorCode } from '@modelcontextprotocol/server';
import { ConfluxError, kindOfStatus, type ErrorKind, type ErrorStatus } from '../../errors.js';
import { RateLimitedError } from '../../limits/errors.js';
import { HiddenToolError, isProtocolError, reportIncident, UnknownToolError } from '../../gateway/error-mapping.js';
import { UpstreamAuthError, type UpstreamAuthErrorKind } from '../../upstream/auth/upstream-auth.js';

/** An error the REST API reports as `{error: {code, message, details}}` with `status`. */
export class ApiError extends ConfluxError {
  readonly kind: ErrorKind;

  constructor(
    readonly status: ErrorStatus,
    override readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
    this.kind = kindOfStatus(status);
  }

  override clientDetails(): unknown {
    return this.details;
  }
}

/** How the REST API answers an error of a kind, unless the error names a more specific `code`. */
interface ApiAnswer {
  status: ErrorStatus;
  code: string;
  /** Whether the error's `clientDetails()` are sent as `details`. */
  details: boolean;
}

/**
 * Every kind's HTTP status and code. An upstream's faults are the gateway's (502/504), never
 * the caller's bad request. `unavailable` sends no details: when to retry is the Retry-After
 * header's to say (the rate limiter's outage is the one that has such details).
 */
export const API_ANSWERS: Readonly<Record<ErrorKind, ApiAnswer>> = {
  invalid: { status: 400, code: 'invalid_request', details: true },
  unauthenticated: { status: 401, code: 'unauthorized', details: false },
  denied: { status: 403, code: 'forbidden', details: false },
  not_found: { status: 404, code: 'not_found', details: true },
  conflict: { status: 409, code: 'conflict', details: true },
  rate_limited: { status: 429, code: 'rate_limited', details: true },
  limit_exceeded: { status: 429, code: 'limit_exceeded', details: false },
  unavailable: { status: 503, code: 'unavailable', details: false },
  upstream_unavailable: { status: 502, code: 'upstream_unavailable', details: true },
  upstream_timeout: { status: 504, code: 'upstream_timeout', details: true },
};

/**
 * Why the gateway could not authenticate to an upstream. Only a user's missing authorisation is
 * the caller's to act on (403, with the URL to open); the rest is the gateway's (502).
 */
const UPSTREAM_AUTH_ANSWERS: Readonly<Record<UpstreamAuthErrorKind, Omit<ApiAnswer, 'details'>>> = {
  'authorization-required': { status: 403, code: 'authorization_required' },
  misconfigured: { status: 502, code: 'upstream_misconfigured' },
  failed: { status: 502, code: 'upstream_auth_failed' },
};

/**
 * The kinds of the JSON-RPC errors an upstream (or the gateway) answers with that the caller
 * can fix; an error with any other code is the upstream's own (502 `upstream_error`).
 */
const PROTOCOL_ERROR_KINDS: ReadonlyMap<number, ErrorKind> = new Map([
  [ProtocolErrorCode.InvalidParams, 'invalid'],
  [ProtocolErrorCode.InvalidRequest, 'invalid'],
  [ProtocolErrorCode.MethodNotFound, 'not_found'],
]);

/**
 * The one mapping from failures to REST responses. An error no rule knows is a 500 that
 * names only an incident id; the error itself goes to `logger` under that id.
 */
export function apiErrorResponse(c: Context, error: unknown, logger: Pick<Logger, 'error'>): Response {
  const { status, code, message, details } = toApiError(error) ?? internalError(error, logger, { method: c.req.method, path: c.req.path });
  if (error instanceof RateLimitedError) c.header('Retry-After', String(error.retryAfterSeconds));
  return c.json({ error: { code, message, ...(details === undefined ? {} : { details }) } }, status);
}

/** `error` as the REST API reports it; undefined when it is unexpected (see `isExpectedError`). */
function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  // Answered alike, so a refusal never confirms that a name exists (the message matches the tool routes' own 404).
  if (error instanceof HiddenToolError || error instanceof UnknownToolError) return new ApiError(404, 'not_found', `no tool named "${error.tool}"`);
  if (error instanceof ConfluxError) {
    const answer = API_ANSWERS[error.kind];
    return new ApiError(answer.status, error.code ?? answer.code, error.message, answer.details ? error.clientDetails() : undefined);
  }
  if (error instanceof UpstreamAuthError) {
    const { status, code } = UPSTREAM_AUTH_ANSWERS[error.kind];
    // The URL is the caller's own: it was made for this caller's authorisation.
    const details = error.kind === 'authorization-required' ? { server: error.server, authorizationUrl: error.authorizationUrl } : { server: error.server };
    return new ApiError(status, code, error.message, details);
  }
  if (isProtocolError(error)) {
    // An upstream (or the gateway) refused the request's content: the caller's to fix.
    const kind = PROTOCOL_ERROR_KINDS.get(error.code);
    if (kind) return new ApiError(API_ANSWERS[kind].status, API_ANSWERS[kind].code, error.message);
    return new ApiError(502, 'upstream_error', error.message, { code: error.code });
  }
  return undefined;
}

/** An unexpected failure's answer: 500 naming only the incident id (no error kind is that; its message is never the client's). */
function internalError(error: unknown, logger: Pick<Logger, 'error'>, context: Record<string, unknown>) {
  const { incident } = reportIncident(error, logger, context);
  return { status: 500, code: 'internal', message: `Internal server error (incident ${incident})`, details: { incident } } as const;
}

/**
 * What kind of failure an error is, said once by its class. Each surface turns a kind into its
 * own wire form through one table: JSON-RPC codes in `gateway/error-mapping.ts`, HTTP statuses
 * and REST codes in `http/api/api-errors.ts`. A new error class picks a kind; no surface needs
 * a new branch for it.
 */
export type ErrorKind =
  /** The request's content is refused: the caller's to fix. */
  | 'invalid'
  /** The request carried no credentials the gateway accepts. */
  | 'unauthenticated'
  /** The request is outside the caller's rights. */
  | 'denied'
  | 'not_found'
  /** The request is at odds with what exists (a name taken, a definition owned by the config file). */
  | 'conflict'
  /** Too many requests in a window; the error says when to try again. */
  | 'rate_limited'
  /** A capacity limit of the gateway's (sessions, concurrent calls, message size). */
  | 'limit_exceeded'
  /** Something the gateway itself relies on (a database, Redis, an authorization server) cannot serve the request now. */
  | 'unavailable'
  /** The upstream is not connected, lost its connection, or answered in something that is not MCP. */
  | 'upstream_unavailable'
  /** The upstream did not answer in time. */
  | 'upstream_timeout';

/**
 * The base of the gateway's typed errors: those whose message is written for the client that
 * caused them (an unexpected error, a bug's TypeError or a driver's, is none of these, and a
 * client reads only an incident id of it).
 */
export abstract class ConfluxError extends Error {
  abstract readonly kind: ErrorKind;
  /** A more specific code than the kind's, for surfaces that name failures by code (the REST API's `error.code`). */
  declare readonly code?: string | undefined;

  /** What a client may read besides the message (a server's name, when to retry); never a secret. */
  clientDetails(): unknown {
    return undefined;
  }
}

/** The HTTP statuses an error may name itself (those the REST API answers a kind with). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 429 | 502 | 503 | 504;

const KIND_OF_STATUS: Record<ErrorStatus, ErrorKind> = {
  400: 'invalid',
  401: 'unauthenticated',
  403: 'denied',
  404: 'not_found',
  409: 'conflict',
  429: 'rate_limited',
  502: 'upstream_unavailable',
  503: 'unavailable',
  504: 'upstream_timeout',
};

/** The kind of an error defined by the HTTP status it is answered with (the REST API's own errors, authentication's). */
export function kindOfStatus(status: ErrorStatus): ErrorKind {
  return KIND_OF_STATUS[status];
}

import type { Principal } from '../../auth/principal.js';
import type { ServerConfig } from '../../config/schema.js';

/** What one HTTP request to an upstream carries to prove who sends it. */
export interface UpstreamCredentials {
  headers: Record<string, string>;
  /** Added to the URL's query (credentials an upstream wants as a query parameter). */
  query: Record<string, string>;
}

/** An upstream's refusal of a request for its credentials. */
export interface AuthChallenge {
  status: 401 | 403;
  /** The `WWW-Authenticate` header, when the upstream sent one. */
  wwwAuthenticate: string | undefined;
}

/**
 * How one connection to an upstream authenticates. The transport asks for credentials before
 * every request (cheap: cached inside), and on a 401 or an `insufficient_scope` 403 asks once
 * to recover before it retries the request a single time.
 */
export interface UpstreamAuth {
  /**
   * Resolves when credentials can be had without anyone acting; rejects with an
   * `UpstreamAuthError` otherwise (a user who has not authorised yet: `authorization-required`).
   * Called before a connection is opened.
   */
  ready(): Promise<void>;
  /** Credentials for the next request; rejects with an `UpstreamAuthError`. */
  credentials(): Promise<UpstreamCredentials>;
  /** The upstream refused the credentials: get new ones. `true`: retry the request once; `false`: give up (the refusal stands). */
  onRejected(challenge: AuthChallenge): Promise<boolean>;
  /** Releases what it holds (file watches, timers). */
  close(): void;
}

export type UpstreamAuthErrorKind =
  /** The configuration cannot work: a missing or unreadable credential, a client the authorization server rejects. Retrying does not help. */
  | 'misconfigured'
  /** The user must authorise the gateway first, at `authorizationUrl`. */
  | 'authorization-required'
  /** The authorization server or the token request failed (unreachable, 5xx, refused grant). May work later. */
  | 'failed';

/** Why credentials for an upstream cannot be had. Its message never contains a secret. */
export class UpstreamAuthError extends Error {
  override readonly name = 'UpstreamAuthError';

  /** The URL the user must open; not enumerable, so a logged error (pino copies enumerable fields) never carries its live `state`. */
  declare readonly authorizationUrl?: string;

  constructor(
    readonly kind: UpstreamAuthErrorKind,
    readonly server: string,
    message: string,
    authorizationUrl?: string,
  ) {
    super(message);
    Object.defineProperty(this, 'authorizationUrl', { value: authorizationUrl, enumerable: false });
  }
}

/** Who a per-user instance or token is for. */
export interface CallerIdentity {
  principal: Principal;
}

/** Whether `config` gets one instance per user rather than one shared connection. */
export function isPerUser(config: ServerConfig): boolean {
  if (config.shared === false) return true;
  return config.transport !== 'stdio' && config.auth?.method === 'oauth2' && config.auth.identity !== 'service';
}

/** Builds the auth of a connection: the shared one (`caller` undefined) or one user's. Undefined: nothing to add. */
export type AuthFor = (server: string, config: ServerConfig, caller?: CallerIdentity) => UpstreamAuth | undefined;

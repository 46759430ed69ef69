import {
  auth,
  AuthorizationServerMismatchError,
  computeScopeUnion,
  extractWWWAuthenticateParams,
  InsecureTokenEndpointError,
  isStrictScopeSuperset,
  IssuerMismatchError,
  OAuthError,
  RegistrationRejectedError,
} from '@modelcontextprotocol/client';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { GrantClientProvider } from './grant-client-provider.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { oauthFetch } from './oauth-fetch.js';
import { needsRenewal, stillValid, type HeldToken } from './token-lifetime.js';
import { UpstreamAuthError, type AuthChallenge, type UpstreamAuth, type UpstreamCredentials } from './upstream-auth.js';

/**
 * A refusal that arrives within this long of a new token is taken to be of the token it
 * replaced (requests sent before it): the request is retried with the new one, and no second
 * token is asked for. Without it, N requests refused together would ask for N tokens.
 */
const FRESH_TOKEN_MS = 2000;

/** OAuth errors no retry can fix: the client, its authentication or what it asks for is wrong. */
const CONFIGURATION_ERRORS = new Set(['invalid_client', 'unauthorized_client', 'invalid_scope', 'invalid_target', 'unsupported_grant_type', 'invalid_client_metadata']);

export interface GrantedTokenOptions {
  server: string;
  config: HttpServerConfig;
  auth: OAuth2AuthConfig;
  deps: OAuthClientDeps;
  provider: GrantClientProvider;
  /** What the identity is, in messages: "the gateway's service identity". */
  describe: string;
  /** Checked before any request: throws `UpstreamAuthError` when this identity cannot be had at all. */
  precondition?: () => void;
}

/**
 * An upstream access token got without anyone acting (client credentials, token exchange):
 * asked for through the SDK's `auth()` when the upstream first refuses (its 401 leads to the
 * authorization server: RFC 9728, then RFC 8414 or OpenID discovery), held, renewed shortly
 * before it expires, one request at a time however many callers wait for it, and asked for
 * again with the union of scopes when the upstream says `insufficient_scope`.
 */
export class GrantedToken implements UpstreamAuth {
  readonly #options: GrantedTokenOptions;
  readonly #now: () => number;
  #token: HeldToken | undefined;
  #pending: Promise<HeldToken> | undefined;
  /** Scopes to ask for: the configured ones, widened by each `insufficient_scope` challenge. */
  #scope: string | undefined;
  #resourceMetadataUrl: URL | undefined;
  /** Set by the first refusal or token: from then on a token is asked for before requests, not after a 401. */
  #engaged = false;
  #closed = false;

  constructor(options: GrantedTokenOptions) {
    this.#options = options;
    this.#now = options.deps.now ?? Date.now;
    this.#scope = options.auth.scopes.length ? options.auth.scopes.join(' ') : undefined;
  }

  /**
   * Checks what can be checked without the upstream: the configured secrets are readable and
   * the identity applies. The token itself is asked for when the upstream's first refusal says
   * where (the MCP way), or at once when the authorization server is configured.
   */
  async ready(): Promise<void> {
    this.#options.precondition?.();
    this.#options.provider.check();
    if (this.#options.auth.authorizationServer && !this.#token) await this.#renew();
  }

  async credentials(): Promise<UpstreamCredentials> {
    this.#options.precondition?.();
    if (!this.#engaged && !this.#token) return { headers: {}, query: {} };
    const token = await this.#current();
    return { headers: { authorization: `Bearer ${token.value}` }, query: {} };
  }

  async onRejected(challenge: AuthChallenge): Promise<boolean> {
    if (this.#closed) return false;
    const params = challengeParams(challenge.wwwAuthenticate);
    if (params.resourceMetadataUrl) this.#resourceMetadataUrl = params.resourceMetadataUrl;
    this.#engaged = true;
    if (challenge.status === 403) {
      if (params.error !== 'insufficient_scope') return false;
      const wanted = computeScopeUnion(this.#scope, this.#token?.scope, params.scope);
      // Asking again for what the token already has cannot help.
      if (!isStrictScopeSuperset(wanted, this.#token?.scope)) return false;
      this.#scope = wanted;
      await this.#renew();
      return true;
    }
    if (this.#pending) {
      await this.#pending;
      return true;
    }
    if (this.#token && this.#now() - this.#token.obtainedAt < FRESH_TOKEN_MS) return true;
    if (params.scope) this.#scope = computeScopeUnion(this.#scope, params.scope);
    await this.#renew();
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#token = undefined;
  }

  /** The token to send now: the held one, or a renewed one when it is about to expire. */
  async #current(): Promise<HeldToken> {
    const token = this.#token;
    const now = this.#now();
    if (token && !needsRenewal(token, now)) return token;
    if (!token) return this.#renew();
    try {
      return await this.#renew();
    } catch (error) {
      // The old token still works for a while: calls go on, the next one tries again.
      if (stillValid(token, this.#now())) {
        this.#options.deps.logger.warn({ server: this.#options.server, err: (error as Error).message }, 'could not renew the upstream access token; using the current one while it lasts');
        return token;
      }
      throw error;
    }
  }

  /** One token request at a time: whoever asks while one is under way waits for it. */
  #renew(): Promise<HeldToken> {
    this.#pending ??= this.#request().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #request(): Promise<HeldToken> {
    const { provider, config, server, deps } = this.#options;
    const renewing = this.#token !== undefined;
    const asked = this.#scope;
    this.#engaged = true;
    try {
      provider.takeTokens();
      const result = await auth(provider, {
        serverUrl: config.url,
        ...(this.#resourceMetadataUrl ? { resourceMetadataUrl: this.#resourceMetadataUrl } : {}),
        ...(asked ? { scope: asked } : {}),
        fetchFn: oauthFetch,
      });
      const tokens = provider.takeTokens();
      if (result !== 'AUTHORIZED' || !tokens) throw new UpstreamAuthError('failed', server, `the authorization server gave ${this.#options.describe} no token`);
      const obtainedAt = this.#now();
      const token: HeldToken = {
        value: tokens.access_token,
        obtainedAt,
        expiresAt: tokens.expires_in === undefined ? undefined : obtainedAt + tokens.expires_in * 1000,
        scope: tokens.scope ?? asked,
      };
      if (this.#closed) return token;
      this.#token = token;
      if (renewing) deps.onTokenRefreshed(server);
      return token;
    } catch (error) {
      deps.onTokenRefreshFailed(server, providerLabel(provider.issuer ?? this.#options.auth.authorizationServer ?? config.url));
      const failure = asAuthError(error, server, this.#options.describe);
      deps.logger.warn({ server, kind: failure.kind, err: failure.message }, 'could not get an upstream access token');
      throw failure;
    }
  }
}

/** The parameters of a `WWW-Authenticate` challenge, read by the SDK's own parser. */
function challengeParams(header: string | undefined): ReturnType<typeof extractWWWAuthenticateParams> {
  if (!header) return {};
  return extractWWWAuthenticateParams(new Response(null, { status: 401, headers: { 'www-authenticate': header } }));
}

/** The metrics label of an authorization server: its issuer's host. */
export function providerLabel(issuerOrUrl: string): string {
  try {
    return new URL(issuerOrUrl).host || 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * What a failed `auth()` means for the connection: `misconfigured` when the configuration is
 * wrong (the client refused, an issuer that does not match, a scope or resource the server does
 * not know), `failed` when it may work later (unreachable, a server error, a refused grant).
 * Messages carry the OAuth error code and description, never a credential.
 */
function asAuthError(error: unknown, server: string, who: string): UpstreamAuthError {
  if (error instanceof UpstreamAuthError) return error;
  if (error instanceof OAuthError) {
    const kind = CONFIGURATION_ERRORS.has(error.code) ? 'misconfigured' : 'failed';
    return new UpstreamAuthError(kind, server, `the authorization server refused ${who} (${error.code}${error.message ? `: ${error.message.slice(0, 200)}` : ''})`);
  }
  if (error instanceof IssuerMismatchError || error instanceof AuthorizationServerMismatchError) {
    return new UpstreamAuthError('misconfigured', server, `the upstream's authorization server is not the one configured for ${who} (${error.message.slice(0, 200)})`);
  }
  if (error instanceof InsecureTokenEndpointError) return new UpstreamAuthError('misconfigured', server, `the authorization server's token endpoint is not HTTPS: ${error.tokenEndpoint}`);
  if (error instanceof RegistrationRejectedError) return new UpstreamAuthError('misconfigured', server, `the authorization server refused to register the gateway (HTTP ${error.status}); configure a clientId`);
  const message = error instanceof Error ? error.message : String(error);
  if (/does not support dynamic client registration/.test(message)) {
    return new UpstreamAuthError('misconfigured', server, 'the authorization server offers no dynamic client registration; configure a clientId');
  }
  const cause = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : message.slice(0, 200);
  return new UpstreamAuthError('failed', server, `could not get a token for ${who}: ${cause}`);
}

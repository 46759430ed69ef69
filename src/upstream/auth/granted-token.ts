import {
  auth,
  AuthorizationServerMismatchError,
  computeScopeUnion,
  extractWWWAuthenticateParams,
  InsecureTokenEndpointError,
  isStrictScopeSuperset,
  IssuerMismatchError,
  OAuthError,
  OAuthErrorCode,
  RegistrationRejectedError,
} from '@modelcontextprotocol/client';
import { redactText } from '../../observability/redact.js';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { GrantClientProvider } from './grant-client-provider.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { oauthErrorCode } from './oauth-failures.js';
import { oauthFetch } from './oauth-fetch.js';
import { RecentCredentials } from './observed-auth.js';
import { needsRenewal, renewalCooldownMs, stillValid, type HeldToken } from './token-lifetime.js';
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
  /** Secrets of this identity besides the client's own (the caller's token an exchange sends), kept out of messages and logs. */
  secrets?: () => readonly string[];
}

/** One token request under way, and the scope it asks for. */
interface Round {
  promise: Promise<HeldToken>;
  scope: string | undefined;
}

/**
 * An upstream access token got without anyone acting (client credentials, token exchange):
 * asked for through the SDK's `auth()` when the upstream first refuses (its 401 leads to the
 * authorization server: RFC 9728, then RFC 8414 or OpenID discovery), held, renewed in the
 * background shortly before it expires, one request at a time however many callers wait for
 * it, and asked for again with the union of scopes when the upstream says `insufficient_scope`.
 *
 * An authorization server that is down must not hold calls: a token in its renewal window is
 * used while the renewal runs, a whole token request (discovery included) has one deadline,
 * and after a failure the next request waits a few seconds (growing). Every message and log
 * line is redacted with the secrets this identity holds (client secret or key, the caller's
 * token, tokens issued), since an authorization server's error may quote them.
 */
export class GrantedToken implements UpstreamAuth {
  readonly #options: GrantedTokenOptions;
  readonly #now: () => number;
  /** The whole of one token request: the connection's connect timeout. */
  readonly #roundTimeoutMs: number;
  /** Aborted on close: ends the token request under way. */
  readonly #lifetime = new AbortController();
  #token: HeldToken | undefined;
  #pending: Round | undefined;
  /** Scopes to ask for: the configured ones, widened by each `insufficient_scope` step-up that succeeded. */
  #scope: string | undefined;
  #resourceMetadataUrl: URL | undefined;
  /** Set by the first refusal or token: from then on a token is asked for before requests, not after a 401. */
  #engaged = false;
  #closed = false;
  /** Failed token requests in a row, the last one's error, and when the next may be made. */
  #failures = 0;
  #lastFailure: UpstreamAuthError | undefined;
  #retryAt = 0;
  /** Tokens issued lately, hidden in what is logged or reported. */
  readonly #issued = new RecentCredentials();

  constructor(options: GrantedTokenOptions) {
    this.#options = options;
    this.#now = options.deps.now ?? Date.now;
    this.#scope = options.auth.scopes.length ? options.auth.scopes.join(' ') : undefined;
    // As `UpstreamConnection.connectTimeoutMs`: a token request is part of connecting.
    this.#roundTimeoutMs = (options.config.connectTimeout ?? Math.max(options.config.timeout, 10)) * 1000;
  }

  /**
   * Checks what can be checked without the upstream: the configured secrets are readable and
   * the identity applies. The token itself is asked for when the upstream's first refusal says
   * where (the MCP way), or at once when the authorization server is configured.
   */
  async ready(): Promise<void> {
    this.#checkOpen();
    this.#options.precondition?.();
    this.#options.provider.check();
    if (this.#options.auth.authorizationServer && !this.#token) await this.#renew(this.#scope);
  }

  async credentials(): Promise<UpstreamCredentials> {
    this.#checkOpen();
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
      // Its own request with the wider scope: a renewal under way asks for less.
      await this.#renew(wanted);
      return true;
    }
    if (this.#pending) {
      await this.#pending.promise;
      return true;
    }
    if (this.#token && this.#now() - this.#token.obtainedAt < FRESH_TOKEN_MS) return true;
    // The upstream may have moved to another authorization server: it is found again (and,
    // when it was discovered, checked against the one first found) before a token is asked for.
    this.#options.provider.invalidateCredentials('discovery');
    await this.#renew(params.scope ? computeScopeUnion(this.#scope, params.scope) : this.#scope);
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#token = undefined;
    this.#lifetime.abort(this.#closedError());
  }

  /** The token to send now: the held one, also while it is being renewed in the background; a new one when it has expired. */
  async #current(): Promise<HeldToken> {
    const token = this.#token;
    const now = this.#now();
    if (token && !needsRenewal(token, now)) return token;
    if (token && stillValid(token, now)) {
      // Nobody awaits this renewal, and its rejection says nothing new: #renew logs the failure
      // where it happens (or it is the close). The token serves until it expires, and the next
      // call after the failure's cool-down tries again.
      if (!this.#pending && now >= this.#retryAt) this.#renew(this.#scope).catch(() => {});
      return token;
    }
    return this.#renew(this.#scope);
  }

  /**
   * One token request at a time: whoever asks while one is under way waits for it, unless it
   * needs a scope that request does not ask for (a step-up), which then follows it. After a
   * failure, nothing is asked until its cool-down has passed: the failure stands until then.
   */
  #renew(scope: string | undefined): Promise<HeldToken> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const pending = this.#pending;
    if (pending && !isStrictScopeSuperset(scope, pending.scope)) return pending.promise;
    if (!pending && this.#lastFailure && this.#now() < this.#retryAt) return Promise.reject(this.#lastFailure);
    const after = pending ? pending.promise.then(noop, noop) : Promise.resolve();
    const round: Round = { scope, promise: after.then(() => this.#request(scope)) };
    round.promise = round.promise.finally(() => {
      if (this.#pending === round) this.#pending = undefined;
    });
    this.#pending = round;
    return round.promise;
  }

  async #request(scope: string | undefined): Promise<HeldToken> {
    const { provider, config, server, deps } = this.#options;
    if (this.#closed) throw this.#closedError();
    const renewing = this.#token !== undefined;
    this.#engaged = true;
    const deadline = AbortSignal.any([this.#lifetime.signal, AbortSignal.timeout(this.#roundTimeoutMs)]);
    try {
      provider.takeTokens();
      const result = await auth(provider, {
        serverUrl: config.url,
        ...(this.#resourceMetadataUrl ? { resourceMetadataUrl: this.#resourceMetadataUrl } : {}),
        ...(scope ? { scope } : {}),
        fetchFn: (url, init) => oauthFetch(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline }),
      });
      if (this.#closed) throw this.#closedError();
      const tokens = provider.takeTokens();
      if (result !== 'AUTHORIZED' || !tokens) throw new UpstreamAuthError('failed', server, `the authorization server gave ${this.#options.describe} no token`);
      this.#issued.add(tokens.refresh_token ? [tokens.access_token, tokens.refresh_token] : [tokens.access_token]);
      const obtainedAt = this.#now();
      const token: HeldToken = {
        value: tokens.access_token,
        obtainedAt,
        expiresAt: tokens.expires_in === undefined ? undefined : obtainedAt + tokens.expires_in * 1000,
        scope: tokens.scope ?? scope,
      };
      this.#token = token;
      this.#scope = computeScopeUnion(this.#scope, scope);
      this.#failures = 0;
      this.#lastFailure = undefined;
      this.#retryAt = 0;
      if (renewing) deps.onTokenRefreshed(server);
      return token;
    } catch (error) {
      // Closing is no failure of the authorization server's.
      if (this.#closed) throw this.#closedError();
      const timedOut = deadline.aborted && !this.#lifetime.signal.aborted;
      const failure = this.#redacted(timedOut ? new UpstreamAuthError('failed', server, `could not get a token for ${this.#options.describe}: no answer within ${this.#roundTimeoutMs / 1000}s`) : asAuthError(error, server, this.#options.describe));
      this.#failures++;
      this.#lastFailure = failure;
      const cooldown = renewalCooldownMs(this.#failures);
      this.#retryAt = this.#now() + cooldown;
      deps.onTokenRefreshFailed(server, providerLabel(provider.issuer ?? this.#options.auth.authorizationServer ?? config.url));
      deps.logger.warn({ server, kind: failure.kind, err: failure.message, retryInSeconds: cooldown / 1000 }, 'could not get an upstream access token');
      throw failure;
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): UpstreamAuthError {
    return new UpstreamAuthError('failed', this.#options.server, `the credentials of ${this.#options.describe} are closed (the connection was stopped)`);
  }

  /** `error` with every secret this identity knows hidden from its message (in place: it stays what it is). */
  #redacted(error: UpstreamAuthError): UpstreamAuthError {
    const known = [...this.#options.provider.secrets(), ...(this.#options.secrets?.() ?? []), ...this.#issued.values()];
    const message = redactText(error.message, known);
    if (message !== error.message) error.message = message;
    return error;
  }
}

function noop(): void {}

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
    const code = oauthErrorCode(error.code);
    if (error.code === OAuthErrorCode.ServerError) {
      // Also what the SDK makes of an answer that is not an OAuth error (an HTML error page,
      // with the raw body in its message): only the status and the code are kept.
      const status = /^HTTP (\d{3}):/.exec(error.message)?.[1];
      return new UpstreamAuthError('failed', server, `the authorization server failed to answer ${who} (${status ? `HTTP ${status}, ` : ''}${code})`);
    }
    const kind = CONFIGURATION_ERRORS.has(error.code) ? 'misconfigured' : 'failed';
    const description = error.message && error.message !== error.code ? `: ${error.message.replace(/\s+/g, ' ').slice(0, 200)}` : '';
    return new UpstreamAuthError(kind, server, `the authorization server refused ${who} (${code}${description})`);
  }
  // A token or metadata answer that is not JSON: the parser quotes its start, which is the server's, not ours to show.
  if (error instanceof SyntaxError) return new UpstreamAuthError('failed', server, `could not get a token for ${who}: the authorization server's answer is not JSON`);
  if (error instanceof IssuerMismatchError || error instanceof AuthorizationServerMismatchError) {
    return new UpstreamAuthError('misconfigured', server, `the upstream's authorization server is not the one configured for ${who} (${error.message.slice(0, 200)})`);
  }
  if (error instanceof InsecureTokenEndpointError) return new UpstreamAuthError('misconfigured', server, `the authorization server's token endpoint is not HTTPS: ${error.tokenEndpoint}`);
  if (error instanceof RegistrationRejectedError) return new UpstreamAuthError('misconfigured', server, `the authorization server refused to register the gateway (HTTP ${error.status}); configure a clientId`);
  if (error instanceof Error && error.name === 'ZodError') return new UpstreamAuthError('failed', server, `could not get a token for ${who}: the authorization server's answer is neither OAuth metadata nor a token response`);
  const message = error instanceof Error ? error.message : String(error);
  if (/does not support dynamic client registration/.test(message)) {
    return new UpstreamAuthError('misconfigured', server, 'the authorization server offers no dynamic client registration; configure a clientId');
  }
  const cause = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : message.slice(0, 200);
  return new UpstreamAuthError('failed', server, `could not get a token for ${who}: ${cause}`);
}

/** An `UpstreamAuth` whose whole work is one `GrantedToken`: the identities differ only in the grant they ask for. */
export abstract class GrantedTokenAuth implements UpstreamAuth {
  protected abstract readonly token: GrantedToken;

  ready(): Promise<void> {
    return this.token.ready();
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.token.credentials();
  }

  onRejected(challenge: AuthChallenge): Promise<boolean> {
    return this.token.onRejected(challenge);
  }

  close(): void {
    this.token.close();
  }
}

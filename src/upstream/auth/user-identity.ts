import { auth, computeScopeUnion, extractWWWAuthenticateParams, type FetchLike, type OAuthDiscoveryState, type OAuthError } from '@modelcontextprotocol/client';
import type { GatewaySettings, HttpServerConfig, OAuth2AuthConfig, UpstreamIdentitySettings } from '../../config/schema.js';
import { localUrlOf } from '../../store/data-dir-lock.js';
import type { TokenChangePeers, UserTokenChange } from './token-change-peers.js';
import type { OpenedDatabase } from '../../store/database.js';
import { UpstreamTokenRepository } from '../../store/upstream-token-repository.js';
import { AuthorizationRequiredError } from './authorization-required.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { PendingAuthorizations, type PendingAuthorization } from './pending-authorizations.js';
import { tokenCipherFor, type TokenCipher } from './token-cipher.js';
import { needsRenewal, stillValid, type HeldToken } from './token-lifetime.js';
import { oauthFetch } from './oauth-fetch.js';
import { clientRefusalText, describeOAuthFailure as describe, isClientRefusal, oauthErrorCode } from './oauth-failures.js';
import { UserTokenRefresh } from './user-token-refresh.js';
import { UpstreamAuthError, type AuthChallenge, type CallerIdentity, type UpstreamAuth, type UpstreamCredentials } from './upstream-auth.js';
import { UserOAuthProvider, type AuthorizationContext, type ProviderDeps } from './user-oauth-provider.js';
import { UserTokenStore, type UserConnection, type UserTokens } from './user-token-store.js';

export type { UserConnection } from './user-token-store.js';

/** Where the gateway's OAuth callback is served. */
export const OAUTH_CALLBACK_PATH = '/oauth/callback';
/** Where users' links lead: `<publicUrl>/oauth/start/<handle>`, a confirmation page that binds the authorization to their browser. */
export const OAUTH_START_PATH = '/oauth/start';

export interface UserIdentitiesDeps {
  repository: UpstreamTokenRepository;
  cipher: TokenCipher;
  settings: Pick<UpstreamIdentitySettings, 'publicUrl' | 'authorizationTimeoutSeconds'>;
  oauth: OAuthClientDeps;
  /**
   * This gateway's address when `publicUrl` is not set, e.g. `http://127.0.0.1:8000`; replaced
   * by `listening()` once the real port is known.
   */
  baseUrl: string;
  /** For the authorization servers' endpoints; `oauthFetch` when not given. */
  fetch?: FetchLike | undefined;
  /** This replica's id, named in the links and states of the authorizations it starts (`PendingAuthorizations`). */
  replicaId?: string | undefined;
  /** The other replicas, told when a user's tokens are stored or revoked here (and telling this one). */
  peers?: TokenChangePeers | undefined;
}

/** How a callback was refused: `status` for the page, `message` for the user (never a secret). */
export class AuthorizationCallbackError extends Error {
  override readonly name = 'AuthorizationCallbackError';

  constructor(
    readonly status: 400 | 502,
    message: string,
  ) {
    super(message);
  }
}

/** A token a user hands in (`POST /api/v1/sessions`). */
export interface SuppliedToken {
  accessToken: string;
  refreshToken?: string | undefined;
  /** Seconds; no expiry known when absent. */
  expiresIn?: number | undefined;
}

/**
 * Users' own authorisations of upstreams (authorization code + PKCE, tokens encrypted at rest).
 * `authFor` gives one user's auth for one server: `ready()` rejects with an
 * `authorization-required` UpstreamAuthError carrying the URL to open until the user has
 * authorised. Discovery, registration, the authorization request and the code exchange are the
 * SDK's `auth()`; refreshes are the SDK's `refreshAuthorization`, made here so that a refused
 * refresh (the user's grant is gone) and a failed one (the authorization server is down) are
 * told apart: the first deletes the token and asks the user again, the second is a failure that
 * may pass.
 */
export class UserIdentities {
  readonly #deps: UserIdentitiesDeps;
  readonly #store: UserTokenStore;
  readonly #pending: PendingAuthorizations<AuthorizationContext>;
  readonly #discovery = new Map<string, OAuthDiscoveryState>();
  readonly #refresh: UserTokenRefresh;
  /** One authorization started at a time per user, server and scope. */
  readonly #starting = new Map<string, Promise<AuthorizationRequiredError>>();
  /**
   * Starts on one upstream run one after the other: the first may register the gateway at the
   * authorization server (RFC 7591), and those after it then find that registration instead of
   * making one each. Starts are rare (a user's first call), so the wait is short.
   */
  readonly #startsByUpstream = new Map<string, Promise<unknown>>();
  readonly #revokedListeners = new Set<(user: string, server: string) => void>();
  readonly #connectedListeners = new Set<(caller: CallerIdentity, server: string) => void>();
  readonly #now: () => number;
  /** Requests to authorization servers: bounded in time (a hung one would hold a user's callback page), answers readable by the SDK. */
  readonly #fetch: FetchLike;
  #baseUrl: string;
  readonly #stopListening: (() => void) | undefined;

  constructor(deps: UserIdentitiesDeps) {
    this.#deps = deps;
    this.#now = deps.oauth.now ?? Date.now;
    this.#store = new UserTokenStore(deps.repository, deps.cipher, deps.oauth.logger, this.#now);
    this.#pending = new PendingAuthorizations({ ttlMs: deps.settings.authorizationTimeoutSeconds * 1000, holder: deps.replicaId, now: this.#now });
    this.#baseUrl = deps.baseUrl;
    this.#fetch = deps.fetch ?? oauthFetch;
    this.#refresh = new UserTokenRefresh({ oauth: deps.oauth, provider: () => this.#providerDeps(), redirectUrl: () => this.redirectUrl, fetch: this.#fetch });
    this.#stopListening = deps.peers?.listen((change) => this.#changedElsewhere(change));
  }

  /** The redirect URL sent to authorization servers: `<publicUrl>/oauth/callback`. */
  get redirectUrl(): string {
    return `${(this.#deps.settings.publicUrl ?? this.#baseUrl).replace(/\/$/, '')}${OAUTH_CALLBACK_PATH}`;
  }

  /**
   * The authorizations waiting for their user, for the start route (`/oauth/start/<handle>`):
   * it shows whose and which each is, and binds it to the browser that confirms it.
   */
  get authorizations(): PendingAuthorizations<AuthorizationContext> {
    return this.#pending;
  }

  /** The gateway listens at `baseUrl` (used when `publicUrl` is not set). */
  listening(baseUrl: string): void {
    this.#baseUrl = baseUrl;
  }

  authFor(server: string, config: HttpServerConfig, auth: OAuth2AuthConfig, caller: CallerIdentity): UpstreamAuth {
    return new UserAuth(this, server, config, auth, caller);
  }

  /** Called when a user's connection is revoked (to stop what still holds it, such as a per-user instance). */
  onRevoked(listener: (user: string, server: string) => void): () => void {
    this.#revokedListeners.add(listener);
    return () => this.#revokedListeners.delete(listener);
  }

  /**
   * Called when a user has authorised a server (or handed in a token): a per-user connection
   * waiting to retry after `authorization-required` may connect at once instead of at its next backoff.
   */
  onConnected(listener: (caller: CallerIdentity, server: string) => void): () => void {
    this.#connectedListeners.add(listener);
    return () => this.#connectedListeners.delete(listener);
  }

  /**
   * The user's tokens for the server, refreshed first when near expiry. Without any (or when
   * the refresh is refused), an authorization is started and its `AuthorizationRequiredError` thrown.
   */
  async validTokens(caller: CallerIdentity, server: string, config: HttpServerConfig, auth: OAuth2AuthConfig): Promise<UserTokens> {
    const user = caller.principal.id;
    const stored = await this.#store.get(user, server);
    let tokens = stored;
    if (stored && needsRenewal(held(stored), this.#now())) {
      // A token the user handed in is not the gateway's to refresh: it serves until it expires.
      if (stored.refreshToken && stored.source !== 'api') {
        try {
          tokens = await this.#refresh.refresh(user, server, config, auth, stored);
        } catch (error) {
          // The authorization server failed (it did not refuse): the old token serves while it
          // lasts, unless the refresh dropped it (its client was refused: the user is told).
          if (!(error instanceof UpstreamAuthError) || !stillValid(held(stored), this.#now()) || !(await this.#store.get(user, server))) throw error;
        }
      } else if (!stillValid(held(stored), this.#now())) {
        await this.#store.delete(user, server); // expired and cannot be renewed: only the user can
        tokens = undefined;
      }
    }
    if (!tokens) throw await this.startAuthorization(caller, server, config, auth);
    return tokens;
  }

  /**
   * The upstream refused `used`: refresh (true: retry), or, for a token it will not take or a
   * wider scope it asks for, start an authorization and throw its `AuthorizationRequiredError`.
   */
  async rejected(caller: CallerIdentity, server: string, config: HttpServerConfig, auth: OAuth2AuthConfig, challenge: AuthChallenge, used: string | undefined): Promise<boolean> {
    const user = caller.principal.id;
    const params = challenge.wwwAuthenticate ? extractWWWAuthenticateParams(new Response(null, { headers: { 'WWW-Authenticate': challenge.wwwAuthenticate } })) : {};
    // The upstream names other metadata than what was found: find its authorization server afresh.
    const known = this.#discovery.get(config.url);
    if (known?.resourceMetadataUrl && params.resourceMetadataUrl && known.resourceMetadataUrl !== params.resourceMetadataUrl.href) this.#discovery.delete(config.url);
    const tokens = await this.#store.get(user, server);
    if (challenge.status === 403) {
      if (params.error !== 'insufficient_scope') return false;
      // A refresh cannot widen a grant (RFC 6749 §6): the user consents to the union.
      const scope = computeScopeUnion(tokens?.scope ?? configuredScope(auth), params.scope);
      throw await this.startAuthorization(caller, server, config, auth, { scope, resourceMetadataUrl: params.resourceMetadataUrl });
    }
    if (tokens && used !== undefined && tokens.accessToken !== used) return true; // replaced meanwhile
    if (tokens?.refreshToken && (await this.#refresh.refresh(user, server, config, auth, tokens))) return true;
    if (tokens) await this.#store.delete(user, server);
    throw await this.startAuthorization(caller, server, config, auth, { resourceMetadataUrl: params.resourceMetadataUrl });
  }

  /**
   * Starts an authorization of `server` for `user` (or hands out the one still waiting for the
   * same scope) and returns the error that tells them where to go.
   */
  async startAuthorization(
    caller: CallerIdentity,
    server: string,
    config: HttpServerConfig,
    auth: OAuth2AuthConfig,
    options: { scope?: string | undefined; resourceMetadataUrl?: URL | undefined } = {},
  ): Promise<AuthorizationRequiredError> {
    const user = caller.principal.id;
    const scope = options.scope ?? configuredScope(auth);
    const waiting = this.#pending.reusable(user, server, scope);
    if (waiting) return this.#required(waiting);
    const key = JSON.stringify([user, server, scope ?? '']);
    let starting = this.#starting.get(key);
    if (!starting) {
      starting = this.#afterOtherStarts(config.url, () => this.#start(caller, server, config, auth, scope, options.resourceMetadataUrl)).finally(() => this.#starting.delete(key));
      this.#starting.set(key, starting);
    }
    return starting;
  }

  /**
   * Completes the authorization `state` names with the authorization server's answer, stores
   * the tokens and tells whoever waits on it. `cookies` are the callback browser's: they must
   * hold the binding set when the user confirmed the link, or a browser other than the user's
   * (one sent a stolen link or state) could finish it. Refused with `AuthorizationCallbackError`:
   * an unknown, expired or used state (400), a browser without the binding (400, and the
   * authorization is dropped), a refusal by the authorization server (400), or a code that could
   * not be redeemed (502). Answers the binding cookie's name, for the page to clear it.
   */
  async complete(
    callback: { state: string; code?: string | undefined; iss?: string | undefined; error?: string | undefined },
    cookies: Readonly<Record<string, string>>,
  ): Promise<{ user: string; server: string; bindingCookie: string | undefined }> {
    const record = this.#pending.take(callback.state);
    if (!record) throw new AuthorizationCallbackError(400, 'This authorization is unknown, was already used, or has expired. Call the tool again for a new link.');
    const fail = (status: 400 | 502, message: string): never => {
      this.#pending.settle(record, { connected: false, reason: message });
      throw new AuthorizationCallbackError(status, message);
    };
    if (!this.#pending.presentedBinding(record, cookies)) {
      this.#deps.oauth.logger.warn({ server: record.server, user: record.user }, 'an authorization callback came from a browser that did not confirm its link; the authorization was dropped');
      return fail(400, 'This authorization was not started in this browser. Open the link you were given, in the browser you sign in with, and confirm there.');
    }
    if (callback.error !== undefined || !callback.code) {
      return fail(400, `The authorization server did not authorise the gateway (${oauthErrorCode(callback.error)}).`);
    }
    const provider = new UserOAuthProvider(this.#providerDeps(), record.user, record.server, record.context, record.scope, record);
    try {
      await auth(provider, { serverUrl: record.context.serverUrl, authorizationCode: callback.code, iss: callback.iss, fetchFn: this.#fetch });
    } catch (error) {
      this.#deps.oauth.logger.warn({ server: record.server, user: record.user, err: describe(error) }, 'an authorization code could not be redeemed');
      if (isClientRefusal(error)) return fail(502, sentence(await this.#clientRefused(provider, record, error as OAuthError)));
      return fail(502, `The gateway could not complete the authorization of "${record.server}": ${describe(error)}`);
    }
    this.#deps.oauth.logger.info({ server: record.server, user: record.user }, 'a user authorised an upstream');
    this.#deps.peers?.announce({ user: record.user, server: record.server, change: 'stored' });
    this.#tell(this.#connectedListeners, record.context.caller, record.server);
    this.#pending.settle(record, { connected: true });
    return { user: record.user, server: record.server, bindingCookie: this.#pending.bindingCookie(record) };
  }

  /** Stored connections: `user`'s, or everyone's. Never a token. */
  connections(user?: string): Promise<UserConnection[]> {
    return this.#store.list(user);
  }

  /** Forgets the user's tokens for the server (and any authorization of it still waiting). True when there were tokens. */
  async revoke(user: string, server: string): Promise<boolean> {
    this.#pending.dropFor(user, server, 'the connection was revoked');
    const removed = await this.#store.revoke(user, server);
    this.#deps.peers?.announce({ user, server, change: 'revoked' });
    for (const listener of this.#revokedListeners) this.#safely(() => listener(user, server), server);
    return removed;
  }

  /**
   * Another replica stored or revoked the user's tokens: what this one read of them is
   * forgotten, and a revocation is applied here as one made here is (authorizations waiting
   * dropped, later ones of before it store nothing, the user's instance stopped).
   */
  #changedElsewhere({ user, server, change }: UserTokenChange): void {
    if (change === 'stored') return this.#store.forget(user, server);
    this.#pending.dropFor(user, server, 'the connection was revoked');
    this.#store.revokedElsewhere(user, server);
    for (const listener of this.#revokedListeners) this.#safely(() => listener(user, server), server);
  }

  /** Stores a token the user obtained themselves, as if they had authorised through the gateway. */
  async supply(caller: CallerIdentity, server: string, token: SuppliedToken): Promise<UserConnection> {
    const user = caller.principal.id;
    const saved = await this.#store.save(
      user,
      server,
      { access_token: token.accessToken, token_type: 'Bearer', ...(token.refreshToken ? { refresh_token: token.refreshToken } : {}), ...(token.expiresIn !== undefined ? { expires_in: token.expiresIn } : {}) },
      { source: 'api' },
    );
    this.#pending.dropFor(user, server, 'a token was supplied');
    this.#deps.peers?.announce({ user, server, change: 'stored' });
    this.#tell(this.#connectedListeners, caller, server);
    return { user, server, createdAt: new Date(this.#now()), expiresAt: saved.expiresAt === undefined ? null : new Date(saved.expiresAt), scopes: [], source: 'api' };
  }

  /** Ends every authorization still waiting (the gateway is stopping). */
  close(): void {
    this.#stopListening?.();
    this.#pending.clear('the gateway is stopping');
  }

  /** Runs `start` once the starts already queued on `upstream` have ended. */
  #afterOtherStarts<T>(upstream: string, start: () => Promise<T>): Promise<T> {
    const run = (this.#startsByUpstream.get(upstream) ?? Promise.resolve()).then(start);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#startsByUpstream.set(upstream, settled);
    void settled.then(() => {
      if (this.#startsByUpstream.get(upstream) === settled) this.#startsByUpstream.delete(upstream);
    });
    return run;
  }

  async #start(caller: CallerIdentity, server: string, config: HttpServerConfig, oauth: OAuth2AuthConfig, scope: string | undefined, resourceMetadataUrl: URL | undefined): Promise<AuthorizationRequiredError> {
    const provider = new UserOAuthProvider(this.#providerDeps(), caller.principal.id, server, { serverUrl: config.url, auth: oauth, redirectUrl: this.redirectUrl, caller }, scope);
    let result: string;
    try {
      result = await auth(provider, { serverUrl: config.url, scope, resourceMetadataUrl, forceReauthorization: true, fetchFn: this.#fetch });
    } catch (error) {
      if (provider.started) this.#pending.discard(provider.started, 'the authorization could not be started');
      if (error instanceof UpstreamAuthError) throw error;
      throw new UpstreamAuthError(isClientRefusal(error) ? 'misconfigured' : 'failed', server, `the authorization of "${server}" cannot be started: ${describe(error)}`);
    }
    const started = provider.started;
    if (result !== 'REDIRECT' || !started?.authorizationUrl) {
      if (started) this.#pending.discard(started, 'no authorization URL was made');
      throw new UpstreamAuthError('failed', server, `the authorization of "${server}" gave no URL to open`);
    }
    return this.#required(started);
  }

  /**
   * The authorization server refused the client the authorization was started as, when its code
   * was redeemed: what the user is told (a registration it no longer takes is dropped first).
   */
  async #clientRefused(provider: UserOAuthProvider, record: PendingAuthorization<AuthorizationContext>, error: OAuthError): Promise<string> {
    const client = record.context.client;
    const issuer = client?.issuer ?? record.discovery?.authorizationServerMetadata?.issuer ?? record.discovery?.authorizationServerUrl;
    let refused: 'registration' | 'configured' = 'configured';
    try {
      refused = await provider.refusedClient(client, issuer, error);
    } catch (failure) {
      this.#deps.oauth.logger.warn({ server: record.server, err: failure }, 'a refused client registration could not be dropped');
    }
    this.#deps.oauth.logger.warn({ server: record.server, issuer, error: error.code, registrationDropped: refused === 'registration' }, "the authorization server refused the gateway's client while redeeming a user's code");
    return clientRefusalText(record.server, error, refused);
  }

  #required(record: PendingAuthorization<AuthorizationContext>): AuthorizationRequiredError {
    // The message is logged and shown as the server's last error: the URL (one user's to open) stays out of it.
    // The user gets the gateway's link, never the authorization server's URL: that carries the
    // state, and whoever opened it could finish the authorization in a browser of their choosing.
    const link = `${(this.#deps.settings.publicUrl ?? this.#baseUrl).replace(/\/$/, '')}${OAUTH_START_PATH}/${record.handle}`;
    return new AuthorizationRequiredError(record.server, `the user has not authorised the gateway on "${record.server}" yet`, link, record.handle, record.outcome, record.expiresAt - this.#now());
  }

  #tell(listeners: Set<(caller: CallerIdentity, server: string) => void>, caller: CallerIdentity | undefined, server: string): void {
    if (!caller) return;
    for (const listener of listeners) this.#safely(() => listener(caller, server), server);
  }

  #safely(run: () => void, server: string): void {
    try {
      run();
    } catch (error) {
      this.#deps.oauth.logger.warn({ err: error, server }, "a listener of users' connections failed");
    }
  }

  #providerDeps(): ProviderDeps {
    return { store: this.#store, pending: this.#pending, discovery: this.#discovery, clientName: this.#deps.oauth.clientName, env: this.#deps.oauth.env, fetch: this.#fetch };
  }
}

/**
 * The users' identities of a gateway: with a database only (tokens need somewhere to be kept).
 * Until `listening()` says where the gateway listens, the callback is assumed at the configured
 * host and port. `replicaId`: this replica's, which its authorizations' links name; `peers`: the other replicas.
 */
export function userIdentitiesFor(settings: GatewaySettings, database: OpenedDatabase | undefined, oauth: OAuthClientDeps, replicaId?: string, peers?: TokenChangePeers): UserIdentities | undefined {
  if (!database) return undefined;
  return new UserIdentities({
    repository: new UpstreamTokenRepository(database.db),
    cipher: tokenCipherFor(settings.upstreamIdentity, oauth.env, database),
    settings: settings.upstreamIdentity,
    oauth,
    baseUrl: localUrlOf(settings.host, settings.port),
    replicaId,
    peers,
  });
}

/** One user's auth towards one server: their tokens, refreshed as needed; their authorization when there are none. */
class UserAuth implements UpstreamAuth {
  /** The access token last handed out: a refusal of an older one is answered by the newer one. */
  #lastUsed: string | undefined;

  constructor(
    private readonly identities: UserIdentities,
    private readonly server: string,
    private readonly config: HttpServerConfig,
    private readonly auth: OAuth2AuthConfig,
    private readonly caller: CallerIdentity,
  ) {}

  async ready(): Promise<void> {
    await this.identities.validTokens(this.caller, this.server, this.config, this.auth);
  }

  async credentials(): Promise<UpstreamCredentials> {
    const tokens = await this.identities.validTokens(this.caller, this.server, this.config, this.auth);
    this.#lastUsed = tokens.accessToken;
    return { headers: { Authorization: `Bearer ${tokens.accessToken}` }, query: {} };
  }

  onRejected(challenge: AuthChallenge): Promise<boolean> {
    return this.identities.rejected(this.caller, this.server, this.config, this.auth, challenge, this.#lastUsed);
  }

  close(): void {}
}

/** The token as the renewal policy shared with the other identities sees it. */
function held(tokens: UserTokens): HeldToken {
  return { value: tokens.accessToken, obtainedAt: tokens.obtainedAt, expiresAt: tokens.expiresAt, scope: tokens.scope };
}

/** `text` as a sentence of a page: capitalised, with its full stop. */
function sentence(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

function configuredScope(auth: OAuth2AuthConfig): string | undefined {
  return auth.scopes.length > 0 ? auth.scopes.join(' ') : undefined;
}

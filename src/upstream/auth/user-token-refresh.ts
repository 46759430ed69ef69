import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  discoverOAuthServerInfo,
  OAuthError,
  OAuthErrorCode,
  refreshAuthorization,
  type FetchLike,
  type OAuthDiscoveryState,
} from '@modelcontextprotocol/client';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { clientRefusalText, describeOAuthFailure, isClientRefusal } from './oauth-failures.js';
import { UpstreamAuthError } from './upstream-auth.js';
import { UserOAuthProvider, type ProviderDeps } from './user-oauth-provider.js';
import type { UserTokens } from './user-token-store.js';

export interface UserTokenRefreshDeps {
  oauth: OAuthClientDeps;
  provider: () => ProviderDeps;
  /** The redirect URL the gateway's registrations are kept under. */
  redirectUrl: () => string;
  fetch: FetchLike;
}

/**
 * Users' refresh tokens redeemed with the SDK's `refreshAuthorization`, one refresh at a time
 * per user and server (later callers share it). Made here rather than through `auth()`, which
 * falls back to a new authorization request on any failure, so that a refused refresh (the
 * user's grant is gone: the token is deleted and the user asked again) and a failed one (the
 * authorization server is down: may pass) are told apart.
 */
export class UserTokenRefresh {
  readonly #deps: UserTokenRefreshDeps;
  readonly #refreshing = new Map<string, Promise<UserTokens | undefined>>();

  constructor(deps: UserTokenRefreshDeps) {
    this.#deps = deps;
  }

  /**
   * The new tokens (or those another refresh stored meanwhile); undefined when the grant is gone
   * (the refused tokens were deleted) or the connection was revoked meanwhile. `UpstreamAuthError`:
   * `failed` when the authorization server failed, `misconfigured` when it refused the gateway's
   * client or no client is known to refresh as (the tokens stay: the client is at fault, not the user).
   * A token the user handed in (`source: 'api'`) is never refreshed with the gateway's client: it
   * is returned as it is, to expire (the user hands in another).
   */
  refresh(user: string, server: string, config: HttpServerConfig, oauth: OAuth2AuthConfig, tokens: UserTokens): Promise<UserTokens | undefined> {
    if (tokens.source === 'api') return Promise.resolve(undefined);
    const key = JSON.stringify([user, server]);
    let refreshing = this.#refreshing.get(key);
    if (!refreshing) {
      refreshing = this.#refreshNow(user, server, config, oauth, tokens).finally(() => this.#refreshing.delete(key));
      this.#refreshing.set(key, refreshing);
    }
    return refreshing;
  }

  async #refreshNow(user: string, server: string, config: HttpServerConfig, oauth: OAuth2AuthConfig, held: UserTokens): Promise<UserTokens | undefined> {
    const deps = this.#deps.provider();
    // Decided on the row as it is now, not on what the caller held (a cached read, or tokens
    // another replica has refreshed since): revoked, nothing to do; replaced, those serve.
    const tokens = await deps.store.reload(user, server);
    if (!tokens) return undefined;
    if (tokens.revision !== held.revision) return tokens;
    if (!tokens.refreshToken || tokens.source === 'api') return undefined;
    let discovery: OAuthDiscoveryState;
    try {
      discovery = await this.#discover(deps.discovery, config.url, oauth);
    } catch (error) {
      throw new UpstreamAuthError('failed', server, `the authorization server of "${server}" cannot be found: ${describeOAuthFailure(error)}`);
    }
    const issuer = discovery.authorizationServerMetadata?.issuer ?? discovery.authorizationServerUrl;
    const provider = new UserOAuthProvider(deps, user, server, { serverUrl: config.url, auth: oauth, redirectUrl: this.#deps.redirectUrl(), caller: undefined }, undefined);
    const clientInformation = await provider.knownClient(issuer);
    if (!clientInformation) {
      // The registration the tokens were got as is gone (or does not open): the gateway's fault, not the user's.
      this.#deps.oauth.logger.warn({ server, issuer }, 'no client registration is known to refresh users\' tokens as');
      throw new UpstreamAuthError('misconfigured', server, `the gateway has no client registration at the authorization server of "${server}" to refresh the token with`);
    }
    try {
      const fresh = await refreshAuthorization(discovery.authorizationServerUrl, {
        metadata: discovery.authorizationServerMetadata,
        clientInformation,
        refreshToken: tokens.refreshToken,
        resource: discovery.resourceMetadata?.resource,
        fetchFn: this.#deps.fetch,
      });
      this.#deps.oauth.onTokenRefreshed(server);
      // Stored only over the row it refreshed: a revocation meanwhile wins, and the result is dropped.
      return await deps.store.replace(user, server, { ...fresh, issuer }, tokens);
    } catch (error) {
      this.#deps.oauth.onTokenRefreshFailed(server, hostOf(issuer));
      if (error instanceof UpstreamAuthError) throw error;
      if (isClientRefusal(error)) {
        const refused = await provider.refusedClient(clientInformation, issuer, error as OAuthError);
        this.#deps.oauth.logger.warn(
          { server, issuer, error: (error as OAuthError).code, registrationDropped: refused === 'registration' },
          "the authorization server refused the gateway's client while refreshing a user's token",
        );
        if (refused === 'registration') {
          // A registration it no longer has (dropped above, made again at the next authorization):
          // this refresh token was issued to it, and nothing can redeem it now. Only this user's
          // tokens go; another user's are refused as theirs come to be refreshed.
          await deps.store.delete(user, server, tokens);
          throw new UpstreamAuthError('failed', server, clientRefusalText(server, error, refused));
        }
        // The configured client is refused, for every user alike: reported, nothing deleted (the
        // grants stay good once an operator fixes the client).
        throw new UpstreamAuthError('misconfigured', server, clientRefusalText(server, error, refused));
      }
      if (error instanceof OAuthError && error.code === OAuthErrorCode.InvalidGrant) {
        // The grant is gone: only the user can give a new one. Deleted only while the row still holds the refused tokens.
        this.#deps.oauth.logger.info({ server, user, error: error.code }, "a user's upstream token could not be refreshed; they will be asked to authorise again");
        await deps.store.delete(user, server, tokens);
        return undefined;
      }
      throw new UpstreamAuthError('failed', server, `refreshing the token for "${server}" failed: ${describeOAuthFailure(error)}`);
    }
  }

  /** The upstream's discovery, found once and shared by its users. */
  async #discover(known: Map<string, OAuthDiscoveryState>, serverUrl: string, oauth: OAuth2AuthConfig): Promise<OAuthDiscoveryState> {
    const cached = known.get(serverUrl);
    if (cached?.authorizationServerMetadata) return cached;
    const fetchFn = this.#deps.fetch;
    let found: OAuthDiscoveryState;
    if (oauth.authorizationServer) {
      const resourceMetadata = await discoverOAuthProtectedResourceMetadata(serverUrl, {}, fetchFn).catch(() => undefined);
      const authorizationServerMetadata = await discoverAuthorizationServerMetadata(oauth.authorizationServer, { fetchFn });
      found = { authorizationServerUrl: oauth.authorizationServer, authorizationServerMetadata, resourceMetadata };
    } else {
      found = await discoverOAuthServerInfo(serverUrl, { fetchFn });
    }
    known.set(serverUrl, found);
    return found;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'unknown';
  }
}

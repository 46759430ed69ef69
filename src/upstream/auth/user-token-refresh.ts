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
import { describeOAuthFailure, isClientRefusal } from './oauth-failures.js';
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

  /** The new tokens; undefined when the grant is gone (the tokens were deleted); `UpstreamAuthError` (`failed`) when the authorization server failed. */
  refresh(user: string, server: string, config: HttpServerConfig, oauth: OAuth2AuthConfig, tokens: UserTokens): Promise<UserTokens | undefined> {
    const key = JSON.stringify([user, server]);
    let refreshing = this.#refreshing.get(key);
    if (!refreshing) {
      refreshing = this.#refreshNow(user, server, config, oauth, tokens).finally(() => this.#refreshing.delete(key));
      this.#refreshing.set(key, refreshing);
    }
    return refreshing;
  }

  async #refreshNow(user: string, server: string, config: HttpServerConfig, oauth: OAuth2AuthConfig, tokens: UserTokens): Promise<UserTokens | undefined> {
    const deps = this.#deps.provider();
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
      // No client to refresh as (a token handed in for a server the gateway never registered at).
      await deps.store.delete(user, server);
      return undefined;
    }
    try {
      const fresh = await refreshAuthorization(discovery.authorizationServerUrl, {
        metadata: discovery.authorizationServerMetadata,
        clientInformation,
        refreshToken: tokens.refreshToken!,
        resource: discovery.resourceMetadata?.resource,
        fetchFn: this.#deps.fetch,
      });
      this.#deps.oauth.onTokenRefreshed(server);
      return await deps.store.save(user, server, { ...fresh, issuer }, { source: tokens.source, previous: tokens });
    } catch (error) {
      this.#deps.oauth.onTokenRefreshFailed(server, hostOf(issuer));
      if (error instanceof UpstreamAuthError) throw error;
      if (error instanceof OAuthError && (error.code === OAuthErrorCode.InvalidGrant || isClientRefusal(error))) {
        // The grant (or the client it was made to) is gone: only the user can give a new one.
        this.#deps.oauth.logger.info({ server, user, error: error.code }, "a user's upstream token could not be refreshed; they will be asked to authorise again");
        await deps.store.delete(user, server);
        if (isClientRefusal(error)) await provider.invalidateCredentials('client');
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

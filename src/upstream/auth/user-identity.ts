import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { CallerIdentity, UpstreamAuth } from './upstream-auth.js';

/**
 * Users' own authorisations of upstreams (authorization code + PKCE, tokens encrypted at rest).
 * `authFor` gives one user's auth for one server: `ready()` rejects with an
 * `authorization-required` UpstreamAuthError carrying the URL to open until the user has
 * authorised.
 */
export interface UserIdentities {
  authFor(server: string, config: HttpServerConfig, auth: OAuth2AuthConfig, caller: CallerIdentity): UpstreamAuth;
}

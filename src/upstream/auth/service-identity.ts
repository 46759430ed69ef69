import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import { GrantClientProvider } from './grant-client-provider.js';
import { GrantedToken, GrantedTokenAuth } from './granted-token.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';

/**
 * The gateway's own identity towards an upstream: client credentials, one token shared by every
 * caller. The client authenticates with its secret (`client_secret_basic` or `_post`, as the
 * authorization server's metadata allows) or a `private_key_jwt` assertion.
 */
export class ServiceIdentity extends GrantedTokenAuth {
  protected readonly token: GrantedToken;

  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
    readonly deps: OAuthClientDeps,
  ) {
    super();
    const provider = new GrantClientProvider({
      server,
      auth,
      clientName: deps.clientName,
      env: deps.env,
      grantTypes: ['client_credentials'],
      grant: (scope) => new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
    });
    this.token = new GrantedToken({ server, config, auth, deps, provider, describe: "the gateway's client" });
  }
}

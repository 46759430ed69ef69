import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import { GrantClientProvider } from './grant-client-provider.js';
import { GrantedToken } from './granted-token.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import type { AuthChallenge, UpstreamAuth, UpstreamCredentials } from './upstream-auth.js';

/**
 * The gateway's own identity towards an upstream: client credentials, one token shared by every
 * caller. The client authenticates with its secret (`client_secret_basic` or `_post`, as the
 * authorization server's metadata allows) or a `private_key_jwt` assertion.
 */
export class ServiceIdentity implements UpstreamAuth {
  readonly #token: GrantedToken;

  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
    readonly deps: OAuthClientDeps,
  ) {
    const provider = new GrantClientProvider({
      server,
      auth,
      clientName: deps.clientName,
      env: deps.env,
      grantTypes: ['client_credentials'],
      grant: (scope) => new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
    });
    this.#token = new GrantedToken({ server, config, auth, deps, provider, describe: "the gateway's client" });
  }

  ready(): Promise<void> {
    return this.#token.ready();
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.#token.credentials();
  }

  onRejected(challenge: AuthChallenge): Promise<boolean> {
    return this.#token.onRejected(challenge);
  }

  close(): void {
    this.#token.close();
  }
}

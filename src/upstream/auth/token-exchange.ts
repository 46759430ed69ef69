import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import { GrantClientProvider } from './grant-client-provider.js';
import { GrantedToken } from './granted-token.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { UpstreamAuthError, type AuthChallenge, type CallerIdentity, type UpstreamAuth, type UpstreamCredentials } from './upstream-auth.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * One user's identity towards an upstream, got by exchanging the caller's own token (RFC 8693)
 * at the upstream's authorization server, found from the upstream's 401 like the service
 * identity's: `subject_token` is the token the caller presented to the gateway, `resource` the
 * upstream (RFC 8707), `audience` when configured, with the configured client authentication.
 * One instance per caller, so the exchanged token is held for that caller only, until shortly
 * before it expires.
 */
export class ExchangeIdentity implements UpstreamAuth {
  readonly #token: GrantedToken;

  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
    readonly caller: CallerIdentity,
    readonly deps: OAuthClientDeps,
  ) {
    const provider = new GrantClientProvider({
      server,
      auth,
      clientName: deps.clientName,
      env: deps.env,
      grantTypes: [TOKEN_EXCHANGE_GRANT],
      grant: (scope) =>
        new URLSearchParams({
          grant_type: TOKEN_EXCHANGE_GRANT,
          subject_token: this.#subjectToken(),
          subject_token_type: ACCESS_TOKEN_TYPE,
          requested_token_type: ACCESS_TOKEN_TYPE,
          ...(auth.audience ? { audience: auth.audience } : {}),
          ...(scope ? { scope } : {}),
        }),
    });
    this.#token = new GrantedToken({
      server,
      config,
      auth,
      deps,
      provider,
      describe: `the token exchange for ${caller.principal.id}`,
      precondition: () => void this.#subjectToken(),
    });
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

  #subjectToken(): string {
    const token = this.caller.principal.token;
    if (!token) throw new UpstreamAuthError('misconfigured', this.server, "this server needs the caller's own token; the caller authenticated without one");
    return token.reveal();
  }
}

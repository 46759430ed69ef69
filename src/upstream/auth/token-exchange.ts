import type { AuthMethod } from '../../auth/principal.js';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import { GrantClientProvider } from './grant-client-provider.js';
import { GrantedToken, GrantedTokenAuth } from './granted-token.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import { UpstreamAuthError, type CallerIdentity } from './upstream-auth.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The ways of signing in to the gateway whose credential is a token an authorization server issued, and so may be exchanged. */
const EXCHANGEABLE: ReadonlySet<AuthMethod> = new Set(['oauth', 'jwt']);

/** How each other way of signing in is named in the refusal. */
const METHOD_NAMES: Record<AuthMethod, string> = { oauth: 'OAuth', jwt: 'JWT', api_key: 'API key', header: 'trusted-header', none: 'unauthenticated' };

/**
 * One user's identity towards an upstream, got by exchanging the caller's own token (RFC 8693)
 * at the configured authorization server (only there: the caller's token never follows an
 * upstream's 401 to whatever server it names): `subject_token` is the OAuth or JWT access token
 * the caller presented to the gateway (an API key or a trusted proxy's header is no token to
 * exchange, and is never sent), `resource` the upstream (RFC 8707), `audience` when configured,
 * with the configured client authentication. One instance per caller, so the exchanged token is
 * held for that caller only, until shortly before it expires.
 */
export class ExchangeIdentity extends GrantedTokenAuth {
  protected readonly token: GrantedToken;

  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
    readonly caller: CallerIdentity,
    readonly deps: OAuthClientDeps,
  ) {
    super();
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
    this.token = new GrantedToken({
      server,
      config,
      auth,
      deps,
      provider,
      describe: `the token exchange for ${caller.principal.id}`,
      precondition: () => void this.#subjectToken(),
      secrets: () => (caller.principal.token ? [caller.principal.token.reveal()] : []),
    });
  }

  #subjectToken(): string {
    // The schema requires it; checked here too, since a caller's token must never go to a discovered server.
    if (!this.auth.authorizationServer) throw new UpstreamAuthError('misconfigured', this.server, "identity: exchange sends callers' tokens to the authorization server: name it in authorizationServer");
    const { method } = this.caller.principal;
    if (!EXCHANGEABLE.has(method)) throw new UpstreamAuthError('misconfigured', this.server, `this server exchanges the caller's own OAuth token; ${METHOD_NAMES[method]} callers have none to exchange`);
    const token = this.caller.principal.token;
    if (!token) throw new UpstreamAuthError('misconfigured', this.server, "this server needs the caller's own token; the caller authenticated without one");
    return token.reveal();
  }
}

import { isReplicated } from '../../config/schema.js';
import { UpstreamAuthError, type AuthFor, type UpstreamAuth } from './upstream-auth.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import type { UserIdentities } from './user-identity.js';
import { staticAuth } from './static-auth.js';
import { ServiceIdentity } from './service-identity.js';
import { ExchangeIdentity } from './token-exchange.js';

export interface AuthFactoryDeps {
  oauth: OAuthClientDeps;
  /** Users' authorisations; without them (no database), `identity: user` servers cannot be used. */
  users?: UserIdentities | undefined;
}

/**
 * The one place that turns a server's `auth` into the auth of a connection: the shared
 * connection's (no caller) or one user's. Per-user identities are asked for only with a caller.
 */
export function createAuthFor(deps: AuthFactoryDeps): AuthFor {
  return (server, config, caller): UpstreamAuth | undefined => {
    if (config.transport === 'stdio' || !config.auth || config.auth.method === 'none') return undefined;
    const auth = config.auth;
    if (auth.method !== 'oauth2') return staticAuth(server, auth, deps.oauth.env);
    // OAuth is bound to one URL (the resource): the pool asks for each replica's with its own definition.
    if (isReplicated(config)) throw new UpstreamAuthError('misconfigured', server, `"${server}" lists replicas: each is authenticated with its own URL`);
    switch (auth.identity) {
      case 'service':
        return new ServiceIdentity(server, config, auth, deps.oauth);
      case 'exchange':
        if (!caller) throw perUserOnly(server);
        return new ExchangeIdentity(server, config, auth, caller, deps.oauth);
      case 'user':
        if (!caller) throw perUserOnly(server);
        if (!deps.users) throw new UpstreamAuthError('misconfigured', server, "identity: user keeps users' authorisations in the database, and the gateway has none");
        return deps.users.authFor(server, config, auth, caller);
    }
  };
}

/** A per-user identity asked for without a user: the pool opens such connections only through `forCaller`. */
function perUserOnly(server: string): UpstreamAuthError {
  return new UpstreamAuthError('misconfigured', server, `"${server}" acts for each user: its connections are opened for a caller`);
}

import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import type { AuthChallenge, CallerIdentity, UpstreamAuth, UpstreamCredentials } from './upstream-auth.js';

/** One user's identity towards an upstream, got by exchanging the caller's own token (RFC 8693). */
export class ExchangeIdentity implements UpstreamAuth {
  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
    readonly caller: CallerIdentity,
    readonly deps: OAuthClientDeps,
  ) {}

  async ready(): Promise<void> {
    throw new Error('not implemented yet');
  }

  async credentials(): Promise<UpstreamCredentials> {
    throw new Error('not implemented yet');
  }

  async onRejected(challenge: AuthChallenge): Promise<boolean> {
    void challenge;
    return false;
  }

  close(): void {}
}

import type { HttpServerConfig, OAuth2AuthConfig } from '../../config/schema.js';
import type { OAuthClientDeps } from './oauth-client-deps.js';
import type { AuthChallenge, UpstreamAuth, UpstreamCredentials } from './upstream-auth.js';

/** The gateway's own identity towards an upstream: client credentials, one token shared by every caller. */
export class ServiceIdentity implements UpstreamAuth {
  constructor(
    readonly server: string,
    readonly config: HttpServerConfig,
    readonly auth: OAuth2AuthConfig,
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

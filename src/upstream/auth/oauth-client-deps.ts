import type { Logger } from 'pino';

/** What the gateway's OAuth client parts (service, exchange and user identity) share. */
export interface OAuthClientDeps {
  logger: Logger;
  /** For `env://` credential references. */
  env: Readonly<Record<string, string | undefined>>;
  /** The client name shown on consent pages and sent in dynamic registration. */
  clientName: string;
  /** Counts token refreshes (`mcp_oauth_token_refreshes_total`) and failures (`mcp_oauth_token_refresh_failures_total{provider}`, the provider being the authorization server's issuer host). */
  onTokenRefreshed(server: string): void;
  onTokenRefreshFailed(server: string, provider: string): void;
  /** The clock, for token expiry; `Date.now` unless a test needs another. */
  now?: () => number;
}

import type { Logger } from 'pino';

/** What the console's page needs to sign a user in at the gateway's authorization server. */
export interface ConsoleOAuthClient {
  /** The console's client id at the authorization server (a public client: PKCE, no secret). */
  clientId: string;
  /** Origins the page must be allowed to reach (its policy's `connect-src`): the token endpoint's. */
  connectOrigins: string[];
}

/** The parts of the authorization server's metadata (RFC 8414) the console uses. */
export interface AuthorizationServerEndpoints {
  readonly registration_endpoint?: string | undefined;
  readonly token_endpoint?: string | undefined;
  readonly authorization_endpoint?: string | undefined;
}

export interface ConsoleOAuthClientsOptions {
  /** The authorization server's metadata, as the gateway discovered it. */
  metadata: () => Promise<AuthorizationServerEndpoints>;
  logger: Logger;
  fetch?: typeof fetch;
}

/** Redirect URIs (one per origin the console is reached at) registered at most; beyond, OAuth sign-in is not offered. */
const MAX_REGISTRATIONS = 16;
/** A failed registration is tried again on a page load after this long. */
const RETRY_AFTER_MS = 60_000;
const REGISTRATION_TIMEOUT_MS = 10_000;

/**
 * Registers the console at the authorization server as a public client (RFC 7591 dynamic
 * registration: PKCE, no secret), once per redirect URI and process, so that its sign-in page
 * can run the authorization code flow. The gateway registers rather than the page: registration
 * endpoints seldom answer cross-origin requests, and the page's policy lets it reach only the
 * token endpoint. Without a registration endpoint (or when it refuses), the console offers the
 * pasted token only.
 */
export class ConsoleOAuthClients {
  readonly #clients = new Map<string, { client: Promise<ConsoleOAuthClient | undefined>; failedAt?: number }>();

  constructor(private readonly options: ConsoleOAuthClientsOptions) {}

  /** The console's client for pages served at `redirectUri`'s origin, or undefined when there is none. */
  for(redirectUri: string): Promise<ConsoleOAuthClient | undefined> {
    const known = this.#clients.get(redirectUri);
    if (known && (known.failedAt === undefined || Date.now() - known.failedAt < RETRY_AFTER_MS)) return known.client;
    if (!known && this.#clients.size >= MAX_REGISTRATIONS) return Promise.resolve(undefined);
    const entry: { client: Promise<ConsoleOAuthClient | undefined>; failedAt?: number } = { client: this.#register(redirectUri) };
    void entry.client.then((client) => {
      if (!client) entry.failedAt = Date.now();
    });
    this.#clients.set(redirectUri, entry);
    return entry.client;
  }

  async #register(redirectUri: string): Promise<ConsoleOAuthClient | undefined> {
    const { logger } = this.options;
    try {
      const metadata = await this.options.metadata();
      if (!metadata.registration_endpoint || !metadata.token_endpoint || !metadata.authorization_endpoint) {
        logger.info('the authorization server offers no dynamic client registration: the console signs in with pasted tokens only');
        return undefined;
      }
      const response = await (this.options.fetch ?? fetch)(metadata.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          client_name: 'Conflux console',
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
          application_type: 'web',
        }),
        signal: AbortSignal.timeout(REGISTRATION_TIMEOUT_MS),
      });
      const body = (await response.json().catch(() => undefined)) as { client_id?: unknown; error?: unknown; error_description?: unknown } | undefined;
      if (!response.ok || typeof body?.client_id !== 'string') {
        logger.warn({ status: response.status, error: body?.error, description: body?.error_description }, 'the authorization server refused to register the console: it signs in with pasted tokens only');
        return undefined;
      }
      const tokenOrigin = policyOrigin(metadata.token_endpoint);
      if (!tokenOrigin) {
        logger.warn('the authorization server names a token endpoint the console cannot be allowed to reach (not a plain http(s) URL): it signs in with pasted tokens only');
        return undefined;
      }
      return { clientId: body.client_id, connectOrigins: [tokenOrigin] };
    } catch (error) {
      logger.warn({ err: error }, 'the console could not be registered at the authorization server: it signs in with pasted tokens only');
      return undefined;
    }
  }
}

/**
 * `url`'s origin when it can stand in a Content-Security-Policy as it is: http(s) and a host of
 * plain name characters or an IPv6 literal. The metadata is the authorization server's word, and
 * a `;` or a quote in its host would add directives to the console's policy.
 */
export function policyOrigin(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  if (!/^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])$/i.test(parsed.hostname)) return undefined;
  return parsed.origin;
}

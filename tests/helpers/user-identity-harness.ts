import { randomBytes } from 'node:crypto';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Hono } from 'hono';
import type { Logger } from 'pino';
import { expect } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { HttpServerSchema, type HttpServerConfig, type OAuth2AuthConfig } from '../../src/config/schema.js';
import { mountOAuthCallback } from '../../src/http/oauth-callback.js';
import { mountOAuthStart } from '../../src/http/oauth-start.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { UpstreamTokenRepository } from '../../src/store/upstream-token-repository.js';
import { AuthorizationRequiredError } from '../../src/upstream/auth/authorization-required.js';
import { credentialSource } from '../../src/upstream/auth/credential-ref.js';
import { TokenCipher } from '../../src/upstream/auth/token-cipher.js';
import type { UpstreamAuth } from '../../src/upstream/auth/upstream-auth.js';
import { UserIdentities } from '../../src/upstream/auth/user-identity.js';
import { startIdentityProvider, type IdentityProviderOptions, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream, type ProtectedUpstreamOptions } from '../fixtures/protected-upstream.js';
import { AuthorizationBrowser } from './authorization-browser.js';
import { freshPglite } from './databases.js';

/**
 * What the tests of users' own upstream authorisations (`identity: user`) share: the gateway's
 * `UserIdentities` over a real database with its start and callback routes on a Hono app
 * (requests made in-process), a real authorization server (the oidc-provider fixture), a
 * protected upstream, and a browser that walks a user through the gateway's link.
 */

/** Where the identities believe the gateway listens: nothing does (the routes are called in-process). */
export const CALLBACK_BASE = 'http://127.0.0.1:9';

/** A gateway user as a JWT caller. */
export const principal = (id: string): Principal => ({ id, subject: id, groups: [], roles: [], scopes: [], method: 'jwt' });

/** The provider, the upstream it protects, and a database with a token key: what every test here starts from. */
export interface UserIdentityWorld {
  idp: TestIdentityProvider;
  upstream: ProtectedUpstream;
  database: OpenedDatabase;
  cipher: TokenCipher;
  close(): Promise<void>;
}

/** Starts the provider (accounts alice and bob by default), a protected upstream it accepts tokens for, and a migrated in-memory database. */
export async function startUserIdentityWorld(
  options: { provider?: Partial<IdentityProviderOptions>; upstream?: Omit<ProtectedUpstreamOptions, 'issuer'> } = {},
): Promise<UserIdentityWorld> {
  const idp = await startIdentityProvider({ resources: [], accounts: { alice: { email: 'alice@example.com' }, bob: { email: 'bob@example.com' } }, ...options.provider });
  const upstream = await startProtectedUpstream({ issuer: idp.issuer, ...options.upstream });
  idp.addResource(upstream.url);
  const database = await freshPglite().open();
  await database.migrate();
  const cipher = new TokenCipher(credentialSource('test', randomBytes(32).toString('base64'), {}));
  return {
    idp,
    upstream,
    database,
    cipher,
    close: async () => {
      await database.close();
      await upstream.close();
      await idp.close();
    },
  };
}

/** A server acting for each user at `url`, as the config file would give it, and its `auth`. */
export function userServer(url: string, auth: Record<string, unknown> = {}): { config: HttpServerConfig; oauth: OAuth2AuthConfig } {
  const config = HttpServerSchema.parse({ transport: 'streamable-http', url, auth: { method: 'oauth2', identity: 'user', scopes: ['mcp:tools'], ...auth } });
  return { config, oauth: config.auth as OAuth2AuthConfig };
}

/** One replica's users' identities, with its routes, its counters and a clock a test can move. */
export interface UserIdentityHarness {
  users: UserIdentities;
  /** The start (`/oauth/start/<handle>`) and callback routes. */
  routes: Hono;
  /** A new browser towards the routes. */
  browser(): AuthorizationBrowser;
  /** Servers whose users' tokens were refreshed, one entry per refresh. */
  refreshes: string[];
  /** `server@provider` per failed refresh. */
  refreshFailures: string[];
  /** Moves the identities' clock (authorization timeouts, token expiry); the authorization server keeps real time. */
  advance(ms: number): void;
}

export function userIdentityHarness(
  database: OpenedDatabase,
  cipher: TokenCipher,
  options: { authorizationTimeoutSeconds?: number; fetch?: typeof fetch; logger?: Logger } = {},
): UserIdentityHarness {
  let offset = 0;
  const refreshes: string[] = [];
  const refreshFailures: string[] = [];
  const logger = options.logger ?? silentLogger();
  const users = new UserIdentities({
    repository: new UpstreamTokenRepository(database.db),
    cipher,
    settings: { publicUrl: undefined, authorizationTimeoutSeconds: options.authorizationTimeoutSeconds ?? 600 },
    oauth: {
      logger,
      env: {},
      clientName: 'Conflux (test)',
      onTokenRefreshed: (server) => void refreshes.push(server),
      onTokenRefreshFailed: (server, provider) => void refreshFailures.push(`${server}@${provider}`),
      now: () => Date.now() + offset,
    },
    baseUrl: CALLBACK_BASE,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const routes = new Hono();
  mountOAuthStart(routes, users, logger);
  mountOAuthCallback(routes, users, logger);
  return {
    users,
    routes,
    browser: () => new AuthorizationBrowser(async (url, init) => routes.request(url, init)),
    refreshes,
    refreshFailures,
    advance: (ms) => void (offset += ms),
  };
}

/** What `ready()` refused with: the authorization the user must do. */
export async function authorizationOf(auth: UpstreamAuth): Promise<AuthorizationRequiredError> {
  const error = await auth.ready().then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(AuthorizationRequiredError);
  return error as AuthorizationRequiredError;
}

/**
 * The user opens the gateway's link and confirms (the browser is bound), the provider's
 * browserless driver signs in as `account` and consents, and the browser lands on the callback:
 * its page.
 */
export async function completeInBrowser(idp: TestIdentityProvider, h: UserIdentityHarness, required: AuthorizationRequiredError, account: string): Promise<Response> {
  const browser = h.browser();
  const url = await browser.authorizationServerUrl(required.authorizationUrl);
  expect(url.searchParams.get('redirect_uri')).toBe(`${CALLBACK_BASE}/oauth/callback`);
  return browser.finish(idp, url, account);
}

/** `auth` asks for an authorization, and the user completes it as `account`. */
export async function authorise(idp: TestIdentityProvider, h: UserIdentityHarness, auth: UpstreamAuth, account: string): Promise<void> {
  const page = await completeInBrowser(idp, h, await authorizationOf(auth), account);
  expect(page.status, await page.clone().text()).toBe(200);
}

/** The `Authorization` header `auth` gives now. */
export const bearerOf = async (auth: UpstreamAuth): Promise<string | undefined> => (await auth.credentials()).headers.Authorization;

/** `whoami` on the protected upstream through the SDK client, with the credentials `auth` gives (fresh for every request). */
export async function whoami(upstream: ProtectedUpstream, auth: UpstreamAuth): Promise<{ sub: string; scope?: string; client_id?: string }> {
  const client = new Client({ name: 'user-identity-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(upstream.url), {
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      for (const [name, value] of Object.entries((await auth.credentials()).headers)) headers.set(name, value);
      return fetch(input, { ...init, headers });
    },
  });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return JSON.parse((result.content as { type: string; text: string }[])[0]!.text) as { sub: string; scope?: string; client_id?: string };
  } finally {
    await client.close();
  }
}

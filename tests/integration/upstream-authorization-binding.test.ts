import { randomBytes } from 'node:crypto';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConflux } from '../../src/conflux.js';
import { HttpServerSchema, type OAuth2AuthConfig } from '../../src/config/schema.js';
import { mountOAuthCallback } from '../../src/http/oauth-callback.js';
import { mountOAuthStart } from '../../src/http/oauth-start.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { UpstreamTokenRepository } from '../../src/store/upstream-token-repository.js';
import { AuthorizationRequiredError } from '../../src/upstream/auth/authorization-required.js';
import { credentialSource } from '../../src/upstream/auth/credential-ref.js';
import { TokenCipher } from '../../src/upstream/auth/token-cipher.js';
import { UserIdentities } from '../../src/upstream/auth/user-identity.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { AuthorizationBrowser } from '../helpers/authorization-browser.js';
import { freshPglite } from '../helpers/databases.js';
import { testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/**
 * The reviewed defect: the callback trusted `state` alone, so an authorization was not tied to
 * the browser that completed it. Account capture (a victim completes someone else's link with
 * their upstream account) and login CSRF (an attacker completes a victim's link with theirs)
 * both ended with tokens stored under the wrong gateway user. Each attack is written here as a
 * user would carry it out, through the real gateway.
 */
describe('authorizations are bound to the browser that confirmed their link', { timeout: 120_000 }, () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    idp = await startIdentityProvider({ resources: [] });
    upstream = await startProtectedUpstream({ issuer: idp.issuer });
    idp.addResource(upstream.url);
    database = await freshPglite().open();
    await database.migrate();
    const config = testConfig(
      { docs: { url: upstream.url, auth: { method: 'oauth2', identity: 'user', scopes: ['mcp:tools'] }, prefix: 'docs' } },
      { auth: { jwt: { secret: JWT_SECRET } }, access: { defaultLevel: 'call' } },
    );
    const conflux = createConflux(config, { logger: silentLogger(), database });
    await conflux.start();
    const { url } = await conflux.listen('127.0.0.1', 0);
    gateway = { conflux, url, stop: () => conflux.stop() };
    base = new URL(gateway.url).origin;
    for (const user of ['mallory', 'victor', 'carol', 'dora', 'ezra']) tokens[user] = await hs256Token({ sub: user, email: `${user}@example.com` });
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await upstream?.close();
    await idp?.close();
  });

  const browser = () => new AuthorizationBrowser((url, init) => fetch(url, { ...init, redirect: 'manual' }));
  const linkFor = async (user: string): Promise<string> => {
    const started = await fetch(`${base}/api/v1/connections/docs`, { method: 'POST', headers: bearer(tokens[user]!) });
    expect(started.status).toBe(200);
    return ((await started.json()) as { authorizationUrl: string }).authorizationUrl;
  };
  const storedTokenOf = (user: string) => new UpstreamTokenRepository(database.db).token(`${user}@example.com`, 'docs');
  const connectionsOf = async (user: string) =>
    ((await (await fetch(`${base}/api/v1/connections`, { headers: bearer(tokens[user]!) })).json()) as { connections: { server: string }[] }).connections;

  it('hands out a gateway link without the state, whose page names the gateway user and the server, in a page no one keeps', async () => {
    const link = await linkFor('mallory');
    // The id of the replica holding it, then 256 random bits.
    expect(link).toMatch(new RegExp(`^${base}/oauth/start/[0-9a-f-]{36}\\.[A-Za-z0-9_-]{43}$`));
    expect(link).not.toContain('state=');
    const response = await fetch(link, { redirect: 'manual' });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('content-security-policy')).toMatch(/^default-src 'none'; form-action 'self' /);
    const html = await response.text();
    expect(html).toContain('Connect &quot;docs&quot; for mallory@example.com?');
    expect(html).toContain('Only continue if you are mallory@example.com and you asked for this.');
    expect(html).not.toContain('state');
    // What the browser goes on to: the authorization server, with a state that is not the handle.
    const asUrl = await browser().authorizationServerUrl(link);
    expect(asUrl.origin).toBe(idp.issuer);
    expect(link).not.toContain(asUrl.searchParams.get('state')!);

    // Unknown and malformed handles.
    expect((await fetch(`${base}/oauth/start/${randomBytes(32).toString('base64url')}`)).status).toBe(400);
    expect((await fetch(`${base}/oauth/start/%3Cscript%3E`)).status).toBe(400);
  });

  it('refuses a callback from a browser that did not confirm the link (account capture): nothing is stored, and the authorization is dropped', async () => {
    const link = await linkFor('mallory');
    const mallorysBrowser = browser();
    const asUrl = await mallorysBrowser.authorizationServerUrl(link);
    // Mallory sends the authorization server's URL on to Victor, who signs in there with his own account.
    const refused = await browser().finish(idp, asUrl, 'bob');
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('not started in this browser');
    expect(await storedTokenOf('mallory')).toBeUndefined();
    expect(await connectionsOf('mallory')).toEqual([]);
    // Dropped: not even Mallory's own browser can finish it now.
    const late = await mallorysBrowser.finish(idp, asUrl, 'alice');
    expect(late.status).toBe(400);
    expect(await late.text()).toContain('unknown, was already used, or has expired');
    expect(await storedTokenOf('mallory')).toBeUndefined();
  });

  it('refuses an attacker who learnt a live state and completes it with their own account (login CSRF)', async () => {
    const link = await linkFor('victor');
    const victorsBrowser = browser();
    const asUrl = await victorsBrowser.authorizationServerUrl(link);
    const attackers = browser();
    const refused = await attackers.finish(idp, asUrl, 'bob');
    expect(refused.status).toBe(400);
    expect(await storedTokenOf('victor')).toBeUndefined();
    const stored = JSON.stringify(await database.db.execute(sql`select owner from upstream_credentials where kind = 'token'`));
    expect(stored).not.toContain('victor@example.com');
    // Victor is asked again and, in his own browser, connects.
    const again = await linkFor('victor');
    expect(again).not.toBe(link);
    expect((await victorsBrowser.authorize(idp, again, 'alice')).status).toBe(200);
    expect(await connectionsOf('victor')).toEqual([expect.objectContaining({ server: 'docs' })]);
    // The same query sees his row now.
    expect(JSON.stringify(await database.db.execute(sql`select owner from upstream_credentials where kind = 'token'`))).toContain('victor@example.com');
  });

  it('binds a link to the first browser that confirms it: a second browser is refused, the first completes', async () => {
    const link = await linkFor('carol');
    const first = browser();
    const asUrl = await first.authorizationServerUrl(link);
    const binding = first.setCookies.find((line) => line.startsWith('conflux_oauth_') && !line.startsWith('conflux_oauth_confirm'))!;
    expect(binding).toMatch(/^conflux_oauth_[0-9a-f]{16}=[A-Za-z0-9_-]{43}; /);
    expect(binding).toMatch(/; HttpOnly/i);
    expect(binding).toMatch(/; SameSite=Lax/i);
    expect(binding).toMatch(/; Path=\/oauth\/callback/i);
    expect(binding).not.toMatch(/; Secure/i); // the gateway is on http here

    const second = browser();
    const opened = await second.open(link);
    expect(opened.status).toBe(410);
    expect(opened.html).toContain('already confirmed in a browser');
    expect(opened.confirm).toBeUndefined();
    // The first browser's own confirmation, replayed, is refused too.
    const replayed = await first.confirm(link, { status: 200, html: '', confirm: 'x' });
    expect(replayed.status).toBe(410);

    const done = await first.finish(idp, asUrl, 'alice');
    expect(done.status).toBe(200);
    // The binding cookie is cleared once used.
    expect(done.headers.getSetCookie().some((line) => line.startsWith(binding.split('=')[0]!) && /max-age=0/i.test(line))).toBe(true);
    expect(await connectionsOf('carol')).toEqual([expect.objectContaining({ server: 'docs' })]);
  });

  it('does not bind on a confirmation forged from another page (no confirmation cookie, or the wrong value)', async () => {
    const link = await linkFor('dora');
    const forged = await fetch(`${link}?confirm=${randomBytes(32).toString('base64url')}`, { redirect: 'manual' });
    expect(forged.status).toBe(400);
    expect(forged.headers.get('location')).toBeNull();
    const victim = browser();
    const page = await victim.open(link);
    expect(page.status).toBe(200);
    const wrong = await victim.confirm(link, { ...page, confirm: 'guessed' });
    expect(wrong.status).toBe(400);
    // Still unbound: the user's own confirmation goes through.
    const right = await victim.confirm(link, page);
    expect(right.status).toBe(303);
    expect(new URL(right.headers.get('location')!).origin).toBe(idp.issuer);
  });
  it('hands out no state in a tool error or a URL-mode elicitation either', async () => {
    const plain = await clientWithHeaders(gateway.url, bearer(tokens.dora!));
    try {
      // The per-user server lists its tools once some user has connected (the tests above did).
      await waitFor(async () => (await plain.client.listTools()).tools.some((t) => t.name === 'docs__whoami'), 30_000, 'the per-user server to list its tools');
      const refused = await plain.client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toContain(`${base}/oauth/start/`);
      expect(textOf(refused)).not.toContain('state=');
    } finally {
      await plain.close();
    }
    const asked: Record<string, unknown>[] = [];
    const client = new Client({ name: 'url-elicitation-client', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    client.setRequestHandler('elicitation/create', async (request) => {
      asked.push(request.params as Record<string, unknown>);
      return { action: 'decline' };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: bearer(tokens.ezra!) } }));
    try {
      await client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(asked).toHaveLength(1);
      expect(String(asked[0]!.url).startsWith(`${base}/oauth/start/`)).toBe(true);
      expect(JSON.stringify(asked[0])).not.toContain('state=');
    } finally {
      await client.close();
    }
  });
});

describe('authorization links behind an https publicUrl', () => {
  it('set Secure cookies and lead to the public address', async () => {
    const database = await freshPglite().open();
    const idp = await startIdentityProvider({ resources: [] });
    const upstream = await startProtectedUpstream({ issuer: idp.issuer });
    idp.addResource(upstream.url);
    try {
      await database.migrate();
      const users = new UserIdentities({
        repository: new UpstreamTokenRepository(database.db),
        cipher: new TokenCipher(credentialSource('test', randomBytes(32).toString('base64'), {})),
        settings: { publicUrl: 'https://gateway.example/', authorizationTimeoutSeconds: 600 },
        oauth: { logger: silentLogger(), env: {}, clientName: 'Conflux (test)', onTokenRefreshed: () => {}, onTokenRefreshFailed: () => {} },
        baseUrl: 'http://127.0.0.1:9',
      });
      const app = new Hono();
      mountOAuthStart(app, users, silentLogger());
      mountOAuthCallback(app, users, silentLogger());
      const config = HttpServerSchema.parse({ transport: 'streamable-http', url: upstream.url, auth: { method: 'oauth2', identity: 'user' } });
      const required = await users
        .authFor('docs', config, config.auth as OAuth2AuthConfig, { principal: { id: '<b>eve</b>', subject: 'eve', groups: [], roles: [], scopes: [], method: 'jwt' } })
        .ready()
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(required).toBeInstanceOf(AuthorizationRequiredError);
      const link = (required as AuthorizationRequiredError).authorizationUrl;
      expect(link).toMatch(/^https:\/\/gateway\.example\/oauth\/start\/[A-Za-z0-9_-]{43}$/);
      const browser = new AuthorizationBrowser(async (url, init) => app.request(url, init));
      const page = await browser.open(link);
      expect(page.html).toContain('&lt;b&gt;eve&lt;/b&gt;');
      expect(page.html).not.toContain('<b>eve</b>');
      const asUrl = await browser.authorizationServerUrl(link);
      expect(asUrl.searchParams.get('redirect_uri')).toBe('https://gateway.example/oauth/callback');
      expect(browser.setCookies.length).toBeGreaterThanOrEqual(2);
      for (const line of browser.setCookies) expect(line).toMatch(/; Secure/i);
      users.close();
    } finally {
      await upstream.close();
      await idp.close();
      await database.close();
    }
  });
});

import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../src/config/schema.js';
import { createConflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { UpstreamTokenRepository } from '../../src/store/upstream-token-repository.js';
import { AuthorizationRequiredError } from '../../src/upstream/auth/authorization-required.js';
import type { TokenCipher } from '../../src/upstream/auth/token-cipher.js';
import { UserTokenStore } from '../../src/upstream/auth/user-token-store.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { AuthorizationBrowser } from '../helpers/authorization-browser.js';
import {
  authorise,
  authorizationOf,
  bearerOf,
  principal,
  startUserIdentityWorld,
  userIdentityHarness,
  userServer,
  type UserIdentityHarness,
  type UserIdentityWorld,
} from '../helpers/user-identity-harness.js';
import { freshPglite } from '../helpers/databases.js';
import { testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/** A gate on the token endpoint's requests of one grant type: the real request waits until `release()`. */
class GrantGate {
  constructor(private readonly grant: 'refresh_token' | 'authorization_code') {}
  #held: (() => void) | undefined;
  #waiting: Promise<void> | undefined;
  reached = false;
  close(): void {
    this.#waiting = new Promise((resolve) => (this.#held = resolve));
  }
  release(): void {
    this.#held?.();
    this.#waiting = undefined;
  }
  fetch: typeof fetch = async (input, init) => {
    if (typeof init?.body === 'string' || init?.body instanceof URLSearchParams) {
      if (String(init.body).includes(`grant_type=${this.grant}`) && this.#waiting) {
        this.reached = true;
        await this.#waiting;
      }
    }
    return fetch(input, init);
  };
}

/** One replica of the gateway: its own users' identities (memory, clock) over the shared database. */
const replica = (database: OpenedDatabase, cipher: TokenCipher, fetchFn?: typeof fetch): UserIdentityHarness =>
  userIdentityHarness(database, cipher, fetchFn ? { fetch: fetchFn } : {});

describe("users' upstream tokens: refreshes, revocations and the shared client", { timeout: 120_000 }, () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let cipher: TokenCipher;
  let config: HttpServerConfig;
  let oauth: OAuth2AuthConfig;
  let world: UserIdentityWorld;

  beforeAll(async () => {
    world = await startUserIdentityWorld();
    ({ idp, upstream, database, cipher } = world);
    ({ config, oauth } = userServer(upstream.url));
  });
  afterAll(async () => {
    await world?.close();
  });

  it('drops a refresh answered after the user revoked the connection: no row comes back', async () => {
    const gate = new GrantGate('refresh_token');
    const r = replica(database, cipher, gate.fetch);
    const auth = r.users.authFor('revoked-mid-refresh', config, oauth, { principal: principal('ann') });
    await authorise(idp, r, auth, 'alice');
    const first = await bearerOf(auth);
    expect(first).toBeTruthy();
    gate.close();
    r.advance(280_000); // 20 s of the provider's 300 s left: within the renewal margin
    const refreshing = auth.credentials().then(
      (credentials) => ({ credentials }),
      (error: unknown) => ({ error }),
    );
    await waitFor(() => gate.reached, 30_000, 'the refresh to reach the token endpoint');
    expect(await r.users.revoke('ann', 'revoked-mid-refresh')).toBe(true);
    gate.release();
    const outcome = await refreshing;
    // The refreshed tokens were not stored: the user is asked to authorise again.
    expect('error' in outcome && outcome.error).toBeInstanceOf(AuthorizationRequiredError);
    expect(await r.users.connections('ann')).toEqual([]);
    expect(await new UpstreamTokenRepository(database.db).token('ann', 'revoked-mid-refresh')).toBeUndefined();
  });

  it('refuses the callback of an authorization that was revoked while its code was being redeemed', async () => {
    const gate = new GrantGate('authorization_code');
    const r = replica(database, cipher, gate.fetch);
    const auth = r.users.authFor('revoked-mid-callback', config, oauth, { principal: principal('ben') });
    const required = await authorizationOf(auth);
    const browser = r.browser();
    const url = await browser.authorizationServerUrl(required.authorizationUrl);
    const code = await idp.authorize(url, 'alice');
    gate.close();
    const page = browser.callback(url, { code, iss: idp.issuer });
    await waitFor(() => gate.reached, 30_000, 'the code to reach the token endpoint');
    // The user revokes (another tab, the CLI) while the code is being redeemed.
    await r.users.revoke('ben', 'revoked-mid-callback');
    gate.release();
    const answer = await page;
    expect(answer.status).toBe(502);
    expect(await answer.text()).toContain('revoked');
    expect(await r.users.connections('ben')).toEqual([]);
  });

  it('lets a stale refresh take the tokens another replica refreshed, never deleting them', async () => {
    const one = replica(database, cipher);
    const two = replica(database, cipher);
    const authOne = one.users.authFor('two-replicas', config, oauth, { principal: principal('cas') });
    const authTwo = two.users.authFor('two-replicas', config, oauth, { principal: principal('cas') });
    await authorise(idp, one, authOne, 'alice');
    const original = await bearerOf(authTwo); // replica two reads (and caches) the tokens
    one.advance(280_000);
    const refreshedByOne = await bearerOf(authOne);
    expect(refreshedByOne).not.toBe(original);
    expect(one.refreshes).toEqual(['two-replicas']);
    // Replica two still holds the old tokens in its cache; its refresh finds the row replaced and takes that.
    two.advance(280_000);
    expect(await bearerOf(authTwo)).toBe(refreshedByOne);
    expect(two.refreshes).toEqual([]);
    expect((await two.users.connections('cas')).map((c) => c.server)).toEqual(['two-replicas']);
  });

  it("never refreshes a token the user handed in with the gateway's client: it serves until it expires", async () => {
    const r = replica(database, cipher);
    const auth = r.users.authFor('handed-in', config, oauth, { principal: principal('dee') });
    await authorise(idp, r, auth, 'alice'); // the gateway has a registration at this issuer
    await r.users.supply({ principal: principal('dee') }, 'handed-in', { accessToken: 'dees-own-access-token', refreshToken: 'dees-own-refresh-token', expiresIn: 300 });
    r.advance(280_000);
    expect(await bearerOf(auth)).toBe('Bearer dees-own-access-token');
    expect(r.refreshes).toEqual([]);
    r.advance(30_000);
    await expect(auth.credentials()).rejects.toBeInstanceOf(AuthorizationRequiredError);
    expect(r.refreshes).toEqual([]);
  });

  it('deletes the tokens whose refresh the authorization server refuses (invalid_grant), and asks the user again', async () => {
    const r = replica(database, cipher);
    const auth = r.users.authFor('refused-grant', config, oauth, { principal: principal('fin') });
    await authorise(idp, r, auth, 'alice');
    // The grant is gone at the authorization server: the stored refresh token is one it does not know.
    const store = new UserTokenStore(new UpstreamTokenRepository(database.db), cipher, silentLogger());
    await store.save('fin', 'refused-grant', { access_token: 'fins-old-access-token', token_type: 'Bearer', refresh_token: 'unknown-refresh-token', expires_in: 300, issuer: idp.issuer }, { source: 'authorization' });
    r.advance(600_000);
    await expect(auth.credentials()).rejects.toBeInstanceOf(AuthorizationRequiredError);
    expect(await r.users.connections('fin')).toEqual([]);
    // The gateway's registration serves the next authorization as before.
    await authorise(idp, r, auth, 'alice');
    expect((await r.users.connections('fin')).map((c) => c.server)).toEqual(['refused-grant']);
  });

  it("keeps the user's tokens and the shared registration when no client is found to refresh as", async () => {
    const r = replica(database, cipher);
    const auth = r.users.authFor('no-client', config, oauth, { principal: principal('eve') });
    await authorise(idp, r, auth, 'alice');
    const held = await bearerOf(auth);
    // The registration row is gone (an operator removed it): the refresh cannot be made.
    await database.db.execute(sql`delete from upstream_credentials where kind = 'client'`);
    r.advance(280_000);
    expect(await bearerOf(auth)).toBe(held); // still valid: it serves
    expect(r.refreshes).toEqual([]);
    expect((await r.users.connections('eve')).map((c) => c.server)).toEqual(['no-client']);
    r.advance(30_000);
    await expect(auth.credentials()).rejects.toMatchObject({ kind: 'misconfigured' });
    expect((await r.users.connections('eve')).map((c) => c.server)).toEqual(['no-client']);
  });
});

describe('the authorization link stays out of audit rows and logs', { timeout: 120_000 }, () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  const logs: string[] = [];
  let token: string;

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
    const conflux = createConflux(config, { logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) }), database });
    await conflux.start();
    const { url } = await conflux.listen('127.0.0.1', 0);
    gateway = { conflux, url, stop: () => conflux.stop() };
    base = new URL(gateway.url).origin;
    token = await hs256Token({ sub: 'fay', email: 'fay@example.com' });
    // Another user connects first, so that the server's tools are known.
    const other = await hs256Token({ sub: 'gil', email: 'gil@example.com' });
    const started = await fetch(`${base}/api/v1/connections/docs`, { method: 'POST', headers: bearer(other) });
    const { authorizationUrl } = (await started.json()) as { authorizationUrl: string };
    const page = await new AuthorizationBrowser((target, init) => fetch(target, { ...init, redirect: 'manual' })).authorize(idp, authorizationUrl, 'alice');
    expect(page.status).toBe(200);
    const client = await clientWithHeaders(gateway.url, bearer(other));
    try {
      await waitFor(async () => (await client.client.listTools()).tools.some((t) => t.name === 'docs__whoami'), 30_000, 'the per-user server to list its tools');
    } finally {
      await client.close();
    }
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await upstream?.close();
    await idp?.close();
  });

  it('gives the caller the link (MCP and REST) while audit rows and logs say only that authorization is required', async () => {
    const client = await clientWithHeaders(gateway.url, bearer(token));
    let link: string;
    try {
      const refused = await client.client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(refused.isError).toBe(true);
      link = /https?:\/\/\S+/.exec(textOf(refused).slice(textOf(refused).indexOf('Open this URL')))![0];
    } finally {
      await client.close();
    }
    const rest = await fetch(`${base}/api/v1/tools/docs__whoami/call`, { method: 'POST', body: '{}', headers: { ...bearer(token), 'content-type': 'application/json' } });
    expect(JSON.stringify(await rest.json())).toContain(link);
    const handle = link.slice(link.lastIndexOf('/') + 1);
    expect(handle.length).toBeGreaterThan(20);

    const auditRows = async () => JSON.stringify(((await database.db.execute(sql`select * from audit_events`)) as unknown as { rows?: unknown[] }).rows ?? []);
    await waitFor(async () => ((await auditRows()).match(/authorization required for/g) ?? []).length >= 2, 30_000, 'both calls to be audited');
    const audit = await auditRows();
    expect(audit).toContain('authorization required for \\"docs\\"');
    expect(audit).not.toContain(handle);
    expect(logs.join('\n')).not.toContain(handle);

    // The authorization server's URL (with the OAuth state) is only what the browser that confirms sees.
    const url = await new AuthorizationBrowser((target, init) => fetch(target, { ...init, redirect: 'manual' })).authorizationServerUrl(link);
    const state = url.searchParams.get('state')!;
    expect(state.length).toBeGreaterThan(20);
    expect(await auditRows()).not.toContain(state);
    expect(logs.join('\n')).not.toContain(state);
    expect(logs.join('\n')).not.toContain(handle);
  });
});

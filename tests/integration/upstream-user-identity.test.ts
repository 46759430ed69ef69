import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../src/config/schema.js';
import { HttpServerSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { UpstreamTokenRepository } from '../../src/store/upstream-token-repository.js';
import { AuthorizationRequiredError } from '../../src/upstream/auth/authorization-required.js';
import { credentialSource } from '../../src/upstream/auth/credential-ref.js';
import { TokenCipher } from '../../src/upstream/auth/token-cipher.js';
import { UserIdentities } from '../../src/upstream/auth/user-identity.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { AuthorizationBrowser } from '../helpers/authorization-browser.js';
import {
  authorizationOf,
  CALLBACK_BASE,
  completeInBrowser,
  principal,
  startUserIdentityWorld,
  userIdentityHarness,
  userServer,
  whoami,
  type UserIdentityWorld,
} from '../helpers/user-identity-harness.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { freshPglite } from '../helpers/databases.js';
import { ROOT, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { pino } from 'pino';
import { createConflux } from '../../src/conflux.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';
import { directDeps } from '../helpers/upstream-deps.js';
import { openDatabase } from '../../src/store/database.js';

describe('user identity (authorization code + PKCE, tokens sealed at rest)', () => {
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
    // No issuer configured: the authorization server is found from the upstream alone (RFC 9728, then RFC 8414).
    ({ config, oauth } = userServer(upstream.url));
  });
  afterAll(async () => {
    await world?.close();
  });

  it('asks the user to authorise, completes at the callback, and then calls as that user; the stored row holds no token in clear', async () => {
    const h = userIdentityHarness(database, cipher);
    const auth = h.users.authFor('docs', config, oauth, { principal: principal('alice@example.com') });
    const required = await authorizationOf(auth);
    expect(required.kind).toBe('authorization-required');
    expect(required.server).toBe('docs');
    // The user gets the gateway's link, named by a handle that is also the elicitation's id.
    expect(required.authorizationUrl).toBe(`${CALLBACK_BASE}/oauth/start/${required.elicitationId}`);
    // Asked again before confirming: the same link, not a second authorization.
    expect((await authorizationOf(auth)).authorizationUrl).toBe(required.authorizationUrl);

    const browser = h.browser();
    const confirmation = await browser.open(required.authorizationUrl);
    expect(confirmation.status).toBe(200);
    expect(confirmation.html).toContain('alice@example.com');
    expect(confirmation.html).toContain('docs');
    const url = await browser.authorizationServerUrl(required.authorizationUrl);
    expect(url.origin).toBe(idp.issuer);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(upstream.url);
    expect(url.searchParams.get('state')).not.toBe(required.elicitationId);
    const page = await browser.finish(idp, url, 'alice');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Connected');
    expect(html).not.toContain(url.searchParams.get('state')!);
    expect(await required.connected(1000)).toBe(true);

    await auth.ready();
    const { headers } = await auth.credentials();
    const accessToken = headers.Authorization!.replace(/^Bearer /, '');
    expect(await whoami(upstream, auth)).toMatchObject({ sub: 'alice', scope: expect.stringContaining('mcp:tools') });
    expect(upstream.seen.at(-1)).toMatchObject({ sub: 'alice', aud: upstream.url });

    // The attack: read the row as anyone with database access would.
    const rows = await database.db.execute(sql`select * from upstream_credentials where kind = 'token'`);
    const stored = JSON.stringify((rows as unknown as { rows?: unknown[] }).rows ?? rows);
    expect(stored).toContain('alice@example.com');
    expect(stored).not.toContain(accessToken);
    const row = (await new UpstreamTokenRepository(database.db).token('alice@example.com', 'docs'))!;
    const sealed = JSON.parse(cipher.open({ keyId: row.keyId!, ciphertext: row.secret! }, 'token\0alice@example.com\0docs')) as { access_token: string; refresh_token?: string };
    expect(sealed.access_token).toBe(accessToken);
    expect(sealed.refresh_token).toBeTruthy();
    expect(stored).not.toContain(sealed.refresh_token);
    expect(row.keyId).toBe(cipher.currentKeyId());

    const connections = await h.users.connections('alice@example.com');
    expect(connections).toEqual([expect.objectContaining({ user: 'alice@example.com', server: 'docs', source: 'authorization', scopes: expect.arrayContaining(['mcp:tools']) })]);
    expect(JSON.stringify(connections)).not.toContain(accessToken);
  });

  it('keeps each user to their own identity upstream', async () => {
    const h = userIdentityHarness(database, cipher);
    const asCarol = h.users.authFor('team', config, oauth, { principal: principal('carol') });
    const asDan = h.users.authFor('team', config, oauth, { principal: principal('dan') });
    const carolsLink = await authorizationOf(asCarol);
    const dansLink = await authorizationOf(asDan);
    expect(carolsLink.elicitationId).not.toBe(dansLink.elicitationId);
    expect((await completeInBrowser(idp, h, carolsLink, 'alice')).status).toBe(200);
    // Dan has not authorised: Carol's authorization is not his.
    expect((await authorizationOf(asDan)).authorizationUrl).toBe(dansLink.authorizationUrl);
    expect((await completeInBrowser(idp, h, dansLink, 'bob')).status).toBe(200);
    expect((await whoami(upstream, asCarol)).sub).toBe('alice');
    expect((await whoami(upstream, asDan)).sub).toBe('bob');
    expect((await whoami(upstream, asCarol)).sub).toBe('alice');
    expect((await h.users.connections()).filter((c) => c.server === 'team').map((c) => c.user)).toEqual(['carol', 'dan']);
  });

  it('revokes a connection, and the user authorises again', async () => {
    const h = userIdentityHarness(database, cipher);
    const auth = h.users.authFor('wiki', config, oauth, { principal: principal('erin') });
    expect((await completeInBrowser(idp, h, await authorizationOf(auth), 'alice')).status).toBe(200);
    expect((await whoami(upstream, auth)).sub).toBe('alice');
    expect(await h.users.revoke('erin', 'wiki')).toBe(true);
    expect(await h.users.revoke('erin', 'wiki')).toBe(false);
    await expect(auth.credentials()).rejects.toBeInstanceOf(AuthorizationRequiredError);
    const again = await authorizationOf(auth);
    expect((await completeInBrowser(idp, h, again, 'bob')).status).toBe(200);
    expect((await whoami(upstream, auth)).sub).toBe('bob');
  });

  it('refuses a callback whose state is forged, already used or expired', async () => {
    const h = userIdentityHarness(database, cipher, { authorizationTimeoutSeconds: 60 });
    const forged = await h.routes.request(`/oauth/callback?${new URLSearchParams({ code: 'a-code', state: randomBytes(32).toString('base64url') })}`);
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain('unknown, was already used, or has expired');
    expect((await h.routes.request('/oauth/callback?code=x')).status).toBe(400);

    const auth = h.users.authFor('expiring', config, oauth, { principal: principal('frank') });
    const required = await authorizationOf(auth);
    const browser = h.browser();
    const url = await browser.authorizationServerUrl(required.authorizationUrl);
    const code = await idp.authorize(url, 'alice');
    h.advance(61_000);
    const late = await browser.callback(url, { code });
    expect(late.status).toBe(400);
    expect(await required.connected(1000)).toBe(false);
    expect(await h.users.connections('frank')).toEqual([]);

    const fresh = await authorizationOf(auth);
    const again = h.browser();
    const freshUrl = await again.authorizationServerUrl(fresh.authorizationUrl);
    expect((await again.finish(idp, freshUrl, 'alice')).status).toBe(200);
    const replay = await again.callback(freshUrl, { code: 'another' });
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain('unknown, was already used, or has expired');
  });

  it('tells the user when they refused consent at the authorization server', async () => {
    const h = userIdentityHarness(database, cipher);
    const auth = h.users.authFor('refused', config, oauth, { principal: principal('gina') });
    const required = await authorizationOf(auth);
    const browser = h.browser();
    const url = await browser.authorizationServerUrl(required.authorizationUrl);
    await expect(idp.authorize(url, 'alice', { deny: true })).rejects.toThrow(/access_denied/);
    const page = await browser.callback(url, { error: 'access_denied', error_description: '<script>x</script>' });
    expect(page.status).toBe(400);
    const html = await page.text();
    expect(html).toContain('access_denied');
    expect(html).not.toContain('<script>');
    expect(await required.connected(1000)).toBe(false);
  });

  it('authenticates per-user connections, each as its own user, once its user has authorised', async () => {
    const h = userIdentityHarness(database, cipher);
    const open: UpstreamConnection[] = [];
    const connect = (user: string) => {
      const connection = new UpstreamConnection(
        'people',
        config,
        directDeps({
          reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 0 },
          auth: h.users.authFor('people', config, oauth, { principal: principal(user) }),
        }),
      );
      open.push(connection);
      connection.start();
      return connection;
    };
    /** What a request is refused with before the user has authorised: the URL to open, not an outage. */
    const refusal = async (connection: UpstreamConnection) => {
      let error: unknown;
      await waitFor(async () => {
        error = await connection.request('tools/call', { name: 'whoami', arguments: {} }).catch((failure: unknown) => failure);
        return error instanceof AuthorizationRequiredError;
      }, 30_000, 'the connection to ask for an authorization');
      expect((error as Error).message).not.toContain('state=');
      return error as AuthorizationRequiredError;
    };
    const sub = async (connection: UpstreamConnection) => {
      await waitFor(() => connection.state === 'ready', 30_000, 'the connection to connect');
      const result = await connection.request('tools/call', { name: 'whoami', arguments: {} });
      return (JSON.parse((result.content as { text: string }[])[0]!.text) as { sub: string }).sub;
    };
    try {
      expect((await completeInBrowser(idp, h, await refusal(connect('ken')), 'alice')).status).toBe(200);
      expect((await completeInBrowser(idp, h, await refusal(connect('lea')), 'bob')).status).toBe(200);
      // Connections opened now (as the pool opens a user's instance) carry each user's own token.
      const ken = connect('ken');
      const lea = connect('lea');
      expect(await sub(ken)).toBe('alice');
      expect(await sub(lea)).toBe('bob');
      expect(await sub(ken)).toBe('alice');
    } finally {
      await Promise.all(open.map((connection) => connection.stop()));
    }
  });

  it('asks the user again, for the wider scope, when the upstream answers insufficient_scope', async () => {
    const guarded = await startProtectedUpstream({ issuer: idp.issuer, toolScopes: { admin_tool: ['mcp:admin'] } });
    idp.addResource(guarded.url);
    const h = userIdentityHarness(database, cipher);
    const guardedConfig = HttpServerSchema.parse({ transport: 'streamable-http', url: guarded.url, auth: { method: 'oauth2', identity: 'user', scopes: ['mcp:tools'] } });
    const connection = new UpstreamConnection(
      'guarded',
      guardedConfig,
      directDeps({
        reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 0 },
        auth: h.users.authFor('guarded', guardedConfig, guardedConfig.auth as OAuth2AuthConfig, { principal: principal('mia') }),
      }),
    );
    try {
      const first = h.users.authFor('guarded', guardedConfig, guardedConfig.auth as OAuth2AuthConfig, { principal: principal('mia') });
      expect((await completeInBrowser(idp, h, await authorizationOf(first), 'alice')).status).toBe(200);
      connection.start();
      await waitFor(() => connection.state === 'ready', 30_000, 'the connection to connect');
      const stepUp = await connection.request('tools/call', { name: 'admin_tool', arguments: {} }).catch((error: unknown) => error);
      expect(stepUp).toBeInstanceOf(AuthorizationRequiredError);
      const browser = h.browser();
      const stepUpUrl = await browser.authorizationServerUrl((stepUp as AuthorizationRequiredError).authorizationUrl);
      const scope = stepUpUrl.searchParams.get('scope')!.split(' ');
      expect(scope).toEqual(expect.arrayContaining(['mcp:tools', 'mcp:admin']));
      // The narrower token still serves what it covers meanwhile.
      expect(((await connection.request('tools/call', { name: 'whoami', arguments: {} })).content as { text: string }[])[0]!.text).toContain('alice');
      expect((await browser.finish(idp, stepUpUrl, 'alice')).status).toBe(200);
      const done = await connection.request('tools/call', { name: 'admin_tool', arguments: {} });
      expect((done.content as { text: string }[])[0]!.text).toBe('admin_tool done');
    } finally {
      await connection.stop();
      await guarded.close();
    }
  });

  it('refreshes a token near its expiry, and asks again once a token the user handed in expires', async () => {
    const h = userIdentityHarness(database, cipher);
    const auth = h.users.authFor('refresh', config, oauth, { principal: principal('hank') });
    expect((await completeInBrowser(idp, h, await authorizationOf(auth), 'alice')).status).toBe(200);
    const first = (await auth.credentials()).headers.Authorization;
    h.advance(280_000); // the provider's tokens live 300 s: 20 s are left, within the renewal margin
    const [a, b] = await Promise.all([auth.credentials(), auth.credentials()]);
    expect(a.headers.Authorization).not.toBe(first);
    expect(b.headers.Authorization).toBe(a.headers.Authorization);
    expect(h.refreshes).toEqual(['refresh']); // one refresh for both requests
    h.advance(-280_000);
    expect((await whoami(upstream, auth)).sub).toBe('alice');

    // A token the user handed in is not refreshed by the gateway (its refresh token belongs to another client): expired, the user is asked again.
    await h.users.supply({ principal: principal('hank') }, 'refresh', { accessToken: 'stale-access-token', refreshToken: 'unknown-refresh-token', expiresIn: 10 });
    h.advance(10_000);
    const required = await authorizationOf(auth);
    expect(required.kind).toBe('authorization-required');
    expect(h.refreshFailures).toEqual([]); // a handed-in token is never refreshed with the gateway's client: it expires
    expect(await h.users.connections('hank')).toEqual([]);
  });

  it("hands a per-user instance's caller the authorization URL when the upstream refuses the token at the handshake and the refresh is refused", async () => {
    const h = userIdentityHarness(database, cipher);
    const pool = new UpstreamPool({
      logger: silentLogger(),
      events: { onServerRequest: async () => ({}), onLogMessage: () => {}, onResourceUpdated: () => {} },
      groups: new ChildProcessGroups(),
      reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 0 },
      health: { breaker: { failureThreshold: 3, cooldownMs: 30_000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 },
      authFor: (server, serverConfig, caller) => {
        const http = serverConfig as HttpServerConfig;
        return caller ? h.users.authFor(server, http, http.auth as OAuth2AuthConfig, caller) : undefined;
      },
    });
    const caller = { principal: principal('nia') };
    try {
      await pool.apply({ people: config });
      // A token that has not expired, so `ready()` passes, but that the upstream refuses; its refresh token is unknown.
      await h.users.supply(caller, 'people', { accessToken: 'stale-access-token', refreshToken: 'unknown-refresh-token', expiresIn: 600 });
      const failure = await pool.forCaller('people', caller).then(
        () => new Error('it started'),
        (error: unknown) => error as Error,
      );
      expect(failure).toBeInstanceOf(AuthorizationRequiredError);
      const required = failure as AuthorizationRequiredError;
      expect(required.kind).toBe('authorization-required');
      expect(required.authorizationUrl.startsWith(`${CALLBACK_BASE}/oauth/start/`)).toBe(true);
      expect(pool.instances()).toEqual([]);
      // The URL works: once the user has authorised there, their instance starts and acts as them.
      expect((await completeInBrowser(idp, h, required, 'alice')).status).toBe(200);
      const instance = await pool.forCaller('people', caller);
      const answer = await instance.request('tools/call', { name: 'whoami', arguments: {} });
      expect((JSON.parse((answer.content as { text: string }[])[0]!.text) as { sub: string }).sub).toBe('alice');
    } finally {
      await pool.stop();
    }
  });
});

/** Runs the CLI to its end. */
async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...nodeArgs('src/cli.ts'), ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('conflux connections (CLI, on the database directly)', { timeout: 240_000 }, () => {
  it('lists users\' connections without their tokens, and revokes one', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'conflux-connections-'));
    const configPath = join(dataDir, 'mcp-servers.yaml');
    writeFileSync(configPath, 'servers: {}\n');
    const database = await openDatabase({ dataDir: join(dataDir, 'pgdata') });
    try {
      await database.migrate();
      const users = new UserIdentities({
        repository: new UpstreamTokenRepository(database.db),
        cipher: new TokenCipher(credentialSource('test', randomBytes(32).toString('base64'), {})),
        settings: { publicUrl: undefined, authorizationTimeoutSeconds: 600 },
        oauth: { logger: silentLogger(), env: {}, clientName: 'Conflux (test)', onTokenRefreshed: () => {}, onTokenRefreshFailed: () => {} },
        baseUrl: CALLBACK_BASE,
      });
      await users.supply({ principal: principal('ivy@example.com') }, 'docs', { accessToken: 'ivys-secret-access-token', refreshToken: 'ivys-secret-refresh-token', expiresIn: 3600 });
      await users.supply({ principal: principal('jack') }, 'docs', { accessToken: 'jacks-secret-access-token' });
    } finally {
      await database.close();
    }
    const env = { CONFLUX_DATA_DIR: dataDir };
    const listed = await runCli(['connections', 'list', '--config', configPath, '--json'], env);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    const connections = JSON.parse(listed.stdout) as { user: string; server: string; source: string }[];
    expect(connections.map((c) => [c.user, c.server, c.source])).toEqual([
      ['ivy@example.com', 'docs', 'api'],
      ['jack', 'docs', 'api'],
    ]);
    expect(listed.stdout).not.toContain('secret');

    expect((await runCli(['connections', 'revoke', 'docs', '--config', configPath], env)).code).toBe(2); // whose? --user is needed here
    const revoked = await runCli(['connections', 'revoke', 'docs', '--user', 'IVY@example.com', '--config', configPath], env);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain('revoked the connection to docs');
    const again = await runCli(['connections', 'revoke', 'docs', '--user', 'ivy@example.com', '--config', configPath], env);
    expect(again.code).toBe(1);
    const after = await runCli(['connections', 'list', '--user', 'jack', '--config', configPath], env);
    expect(after.stdout.trim().split('\n').slice(1).map((line) => line.split('\t').slice(0, 3))).toEqual([['jack', 'docs', 'api']]);
  });
});

describe('user identity through the gateway', { timeout: 120_000 }, () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  const tokens: Record<string, string> = {};
  /** Everything the gateway logged, at debug level. */
  const logs: string[] = [];
  const as = (user: string) => bearer(tokens[user]!);

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
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin']) tokens[user] = await hs256Token({ sub: user, email: `${user}@example.com` });
    tokens.admin = await hs256Token({ sub: 'root', email: 'root@example.com', groups: ['MCP-Admin'] });
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await upstream?.close();
    await idp?.close();
  });

  const api = (path: string, user: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, { ...init, headers: { ...as(user), ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers } });
  /** A browser towards the gateway (real HTTP; redirects are followed by the browser helper, not by fetch). */
  const browser = () => new AuthorizationBrowser((url, init) => fetch(url, { ...init, redirect: 'manual' }));
  /** The user opens the gateway's link, confirms, signs in at the authorization server; the browser comes back to the gateway's callback. */
  const browse = (link: string, account: string) => browser().authorize(idp, link, account);
  const linkIn = (text: string) => /https?:\/\/\S+/.exec(text.slice(text.indexOf('Open this URL')))?.[0];

  it('starts an authorization through the API, completes it at the gateway callback, and lists each user only their own connection', async () => {
    const started = await api('/connections/docs', 'alice', { method: 'POST' });
    expect(started.status).toBe(200);
    const { authorizationUrl } = (await started.json()) as { authorizationUrl: string };
    expect(authorizationUrl.startsWith(`${base}/oauth/start/`)).toBe(true);
    expect(authorizationUrl).not.toContain('state=');
    expect((await browser().authorizationServerUrl(authorizationUrl)).searchParams.get('redirect_uri')).toBe(`${base}/oauth/callback`);
    // That browser confirmed it and went no further: the user asks again and gets a new link.
    const again = (await (await api('/connections/docs', 'alice', { method: 'POST' })).json()) as { authorizationUrl: string };
    expect(again.authorizationUrl).not.toBe(authorizationUrl);

    // The callback is behind the app-wide guards: a foreign Host is refused before anything else.
    const foreign = await fetch(`${base}/oauth/callback?state=x&code=y`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).toContain('forbidden_origin');

    const page = await browse(again.authorizationUrl, 'alice');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Connected');

    const mine = (await (await api('/connections', 'alice')).json()) as { connections: { user: string; server: string; scopes: string[]; expiresAt: string }[] };
    expect(mine.connections).toEqual([expect.objectContaining({ user: 'alice@example.com', server: 'docs', scopes: expect.arrayContaining(['mcp:tools']) })]);
    expect(((await (await api('/connections', 'bob')).json()) as { connections: unknown[] }).connections).toEqual([]);
    expect((await api('/connections?user=alice@example.com', 'bob')).status).toBe(403);
    const seenByAdmin = (await (await api('/connections?user=alice@example.com', 'admin')).json()) as { connections: { server: string }[] };
    expect(seenByAdmin.connections.map((c) => c.server)).toEqual(['docs']);

    const client = await clientWithHeaders(gateway.url, as('alice'));
    try {
      await waitFor(async () => (await client.client.listTools()).tools.some((t) => t.name === 'docs__whoami'), 30_000, 'the per-user server to list its tools');
      const result = await client.client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(JSON.parse(textOf(result))).toMatchObject({ sub: 'alice', aud: upstream.url });
    } finally {
      await client.close();
    }
  });

  it('answers a client without URL elicitation (and REST) with a tool error that carries the URL; after authorising, the call goes through as that user', async () => {
    const client = await clientWithHeaders(gateway.url, as('bob'));
    try {
      const refused = await client.client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(refused.isError).toBe(true);
      const text = textOf(refused);
      expect(text).toContain('not authorised');
      const link = linkIn(text)!;
      expect(link.startsWith(`${base}/oauth/start/`)).toBe(true);
      expect(link).not.toContain('state=');

      const rest = (await (await api('/tools/docs__whoami/call', 'bob', { method: 'POST', body: '{}' })).json()) as { result: { isError?: boolean; content: { text: string }[] } };
      expect(rest.result.isError).toBe(true);
      expect(linkIn(rest.result.content[0]!.text)).toBe(link); // one authorization waiting, one link

      expect((await browse(link, 'bob')).status).toBe(200);
      await waitFor(async () => !(await client.client.callTool({ name: 'docs__whoami', arguments: {} })).isError, 30_000, "bob's call to go through");
      expect(JSON.parse(textOf(await client.client.callTool({ name: 'docs__whoami', arguments: {} }))).sub).toBe('bob');
    } finally {
      await client.close();
    }
  });

  it('asks a client that declares URL elicitation to open the URL, waits for the callback, and completes the call', async () => {
    const client = new Client({ name: 'url-elicitation-client', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    const asked: Record<string, unknown>[] = [];
    const browsing: Promise<Response>[] = [];
    client.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as Record<string, unknown>;
      asked.push(params);
      // The user agrees; the client opens the URL (the user signs in there) and answers at once.
      browsing.push(browse(String(params.url), 'carol'));
      return { action: 'accept' };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: as('carol') } }));
    try {
      const result = await client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(result.isError).toBeFalsy();
      expect(JSON.parse(textOf(result)).sub).toBe('carol');
      expect(asked).toHaveLength(1);
      expect(String(asked[0]!.url)).not.toContain('state=');
      expect(asked[0]).toMatchObject({ mode: 'url', elicitationId: new URL(String(asked[0]!.url)).pathname.split('/').at(-1) });
      expect((await browsing[0])!.status).toBe(200);
    } finally {
      await client.close();
    }
  });

  it('answers a declined URL elicitation with the tool error and its URL', async () => {
    const client = new Client({ name: 'declining-client', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    client.setRequestHandler('elicitation/create', async () => ({ action: 'decline' }));
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: as('dave') } }));
    try {
      const result = await client.callTool({ name: 'docs__whoami', arguments: {} });
      expect(result.isError).toBe(true);
      expect(linkIn(textOf(result))?.startsWith(`${base}/oauth/start/`)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('revokes through the API, after which the user is asked to authorise again', async () => {
    expect((await api('/connections/docs', 'alice', { method: 'DELETE' })).status).toBe(204);
    expect((await api('/connections/docs', 'alice', { method: 'DELETE' })).status).toBe(404);
    const client = await clientWithHeaders(gateway.url, as('alice'));
    try {
      await waitFor(async () => (await client.client.callTool({ name: 'docs__whoami', arguments: {} })).isError === true, 30_000, "alice's revoked connection to refuse");
      const link = linkIn(textOf(await client.client.callTool({ name: 'docs__whoami', arguments: {} })))!;
      expect((await browse(link, 'alice')).status).toBe(200);
      await waitFor(async () => !(await client.client.callTool({ name: 'docs__whoami', arguments: {} })).isError, 30_000, "alice's call to go through again");
    } finally {
      await client.close();
    }
  });

  it('accepts a token the user obtained elsewhere (POST /api/v1/sessions), never answering it back', async () => {
    const own = await idp.clientCredentialsToken({ resource: upstream.url, scope: 'mcp:tools' });
    const refused = await api('/sessions', 'erin', { method: 'POST', body: JSON.stringify({ server: 'nowhere', accessToken: own }) });
    expect(refused.status).toBe(404);
    const created = await api('/sessions', 'erin', { method: 'POST', body: JSON.stringify({ server: 'docs', accessToken: own, expiresIn: 300 }) });
    expect(created.status).toBe(201);
    const answer = await created.text();
    expect(answer).not.toContain(own);
    expect(JSON.parse(answer)).toMatchObject({ server: 'docs', source: 'api', user: 'erin@example.com' });
    const client = await clientWithHeaders(gateway.url, as('erin'));
    try {
      await waitFor(async () => !(await client.client.callTool({ name: 'docs__whoami', arguments: {} })).isError, 30_000, "erin's call to go through");
      expect(JSON.parse(textOf(await client.client.callTool({ name: 'docs__whoami', arguments: {} }))).sub).toBe('conflux-test');
    } finally {
      await client.close();
    }
    const listed = await (await api('/connections?user=*', 'admin')).text();
    expect(listed).not.toContain(own);
    expect(JSON.parse(listed).connections.map((c: { user: string }) => c.user).sort()).toEqual(expect.arrayContaining(['erin@example.com']));

    // The token went upstream on erin's calls: it is nowhere else, whoever reads.
    await gateway.conflux.audit.flush();
    const audit = await (await api('/audit?limit=1000', 'admin')).text();
    expect(audit).toContain('docs__whoami');
    const servers = await (await fetch(`${base}/servers`, { headers: as('admin') })).text();
    const stored = JSON.stringify(await database.db.execute(sql`select * from upstream_credentials`));
    expect(logs.length).toBeGreaterThan(0);
    for (const [where, text] of Object.entries({ logs: logs.join('\n'), audit, servers, stored })) expect(text, where).not.toContain(own);
  });
});

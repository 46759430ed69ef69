import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthMethod, Principal } from '../../src/auth/principal.js';
import { Secret } from '../../src/auth/secret.js';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OAuthClientDeps } from '../../src/upstream/auth/oauth-client-deps.js';
import { ServiceIdentity } from '../../src/upstream/auth/service-identity.js';
import { ExchangeIdentity } from '../../src/upstream/auth/token-exchange.js';
import { UpstreamAuthError, type AuthChallenge, type UpstreamAuth } from '../../src/upstream/auth/upstream-auth.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startScriptedAuthorizationServer, type ScriptedAuthorizationServer } from '../fixtures/scripted-authorization-server.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps, loggerInto } from '../helpers/upstream-deps.js';

/** A client secret no general redaction pattern recognises: only knowing it hides it. */
const SECRET = 'plain-words-hunter-4711';

/**
 * An upstream that only refuses: its protected resource metadata names whichever authorization
 * server the test says (an upstream that moves, or lies), and it counts the requests to its MCP
 * endpoint (none may come before credentials are had).
 */
interface MovingUpstream {
  url: string;
  metadataUrl: string;
  authorizationServer: string;
  readonly mcpRequests: number;
  close(): Promise<void>;
}

async function startMovingUpstream(authorizationServer: string): Promise<MovingUpstream> {
  let mcpRequests = 0;
  const http: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ resource: upstream.url, authorization_servers: [upstream.authorizationServer] }));
      return;
    }
    if (path === '/mcp') mcpRequests++;
    res.writeHead(path === '/mcp' ? 401 : 404, { 'www-authenticate': `Bearer resource_metadata="${upstream.metadataUrl}"` }).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const upstream: MovingUpstream = {
    url: `${origin}/mcp`,
    metadataUrl: `${origin}/.well-known/oauth-protected-resource/mcp`,
    authorizationServer,
    get mcpRequests() {
      return mcpRequests;
    },
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
  return upstream;
}

const person = (method: AuthMethod, token?: string): Principal => ({
  id: 'alice@example.com',
  subject: 'alice',
  email: 'alice@example.com',
  groups: [],
  roles: [],
  scopes: [],
  method,
  ...(token ? { token: new Secret(token) } : {}),
});

function serverConfig(definition: Record<string, unknown>): HttpServerConfig {
  return testConfig({ upstream: definition }).servers.upstream as HttpServerConfig;
}

/** The OAuth client's dependencies, with a clock the test moves and a log it reads. */
function oauthDeps(options: { log?: string[]; failures?: string[] } = {}): OAuthClientDeps & { advance(ms: number): void } {
  let skew = 0;
  return {
    logger: options.log ? loggerInto(options.log) : silentLogger(),
    env: { CLIENT_SECRET: SECRET },
    clientName: 'Conflux test',
    onTokenRefreshed: () => {},
    onTokenRefreshFailed: (server) => options.failures?.push(server),
    now: () => Date.now() + skew,
    advance: (ms) => {
      skew += ms;
    },
  };
}

const refusal = (upstream: MovingUpstream): AuthChallenge => ({ status: 401, wwwAuthenticate: `Bearer resource_metadata="${upstream.metadataUrl}"` });

/**
 * The gateway's token for an upstream (client credentials, token exchange) when things go
 * wrong: an upstream that names another authorization server, callers without a token to
 * exchange, authorization servers that fail, hang or refuse, a connection stopped mid-request.
 */
describe('granted upstream tokens', () => {
  let idp: TestIdentityProvider;
  let otherIdp: TestIdentityProvider;
  const closers: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    [idp, otherIdp] = await Promise.all([startIdentityProvider({ resources: [], tokenExchange: true }), startIdentityProvider({ resources: [], tokenExchange: true })]);
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await idp?.close();
    await otherIdp?.close();
  });

  async function movingUpstream(authorizationServer: string): Promise<MovingUpstream> {
    const upstream = await startMovingUpstream(authorizationServer);
    closers.push(() => upstream.close());
    idp.addResource(upstream.url);
    otherIdp.addResource(upstream.url);
    return upstream;
  }

  async function scriptedServer(expiresIn?: number): Promise<ScriptedAuthorizationServer> {
    const server = await startScriptedAuthorizationServer(expiresIn === undefined ? {} : { expiresIn });
    closers.push(() => server.close());
    return server;
  }

  /** A connection to `config`'s upstream with `auth`, stopped after the tests. */
  const connectionFor = (config: HttpServerConfig, auth: UpstreamAuth, log?: string[]): UpstreamConnection => {
    const connection = new UpstreamConnection(
      'upstream',
      config,
      directDeps({ logger: log ? loggerInto(log) : silentLogger(), reconnect: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 2 }, auth }),
    );
    closers.push(() => connection.stop());
    return connection;
  };

  const serviceIdentity = (config: HttpServerConfig, deps: OAuthClientDeps): ServiceIdentity => {
    const identity = new ServiceIdentity('upstream', config, config.auth as OAuth2AuthConfig, deps);
    closers.push(() => identity.close());
    return identity;
  };

  it('keeps to the authorization server it first discovered: one the upstream names later gets nothing', async () => {
    const upstream = await movingUpstream(idp.issuer);
    // Both identity providers know this client and its secret: sending it to the second would work, and must not happen.
    const config = serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', clientId: idp.client.clientId, clientSecret: idp.client.clientSecret } });
    const deps = oauthDeps();
    const identity = serviceIdentity(config, deps);
    await identity.ready();
    expect(await identity.onRejected(refusal(upstream))).toBe(true);
    const first = await identity.credentials();
    expect(first.headers.authorization).toMatch(/^Bearer /);

    // A later refusal with the same authorization server: discovered again, and a new token from it.
    deps.advance(10_000);
    expect(await identity.onRejected(refusal(upstream))).toBe(true);
    expect((await identity.credentials()).headers.authorization).not.toBe(first.headers.authorization);

    upstream.authorizationServer = otherIdp.issuer;
    deps.advance(10_000);
    const refused = await identity.onRejected(refusal(upstream)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(UpstreamAuthError);
    expect(refused).toMatchObject({ kind: 'misconfigured', message: expect.stringContaining(`the upstream now names authorization server ${otherIdp.issuer}; it first named ${idp.issuer}`) });
    expect(otherIdp.tokenRequests).toBe(0);
  });

  it("exchanges the caller's token only at the configured authorization server, whatever the upstream names", async () => {
    const upstream = await movingUpstream(otherIdp.issuer);
    const config = serverConfig({
      url: upstream.url,
      auth: { method: 'oauth2', identity: 'exchange', authorizationServer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret },
    });
    const deps = oauthDeps();
    const subject = await idp.signToken({ sub: 'alice', aud: 'conflux-gateway' });
    const identity = new ExchangeIdentity('upstream', config, config.auth as OAuth2AuthConfig, { principal: person('oauth', subject) }, deps);
    closers.push(() => identity.close());
    const before = idp.tokenRequests;
    await identity.ready();
    deps.advance(10_000);
    expect(await identity.onRejected(refusal(upstream))).toBe(true);
    expect(idp.tokenRequests - before).toBe(2);
    expect(otherIdp.tokenRequests).toBe(0);
  });

  it('exchanges no API key or trusted-header credential: such callers are refused before anything is sent', async () => {
    const upstream = await movingUpstream(idp.issuer);
    const config = serverConfig({
      url: upstream.url,
      auth: { method: 'oauth2', identity: 'exchange', authorizationServer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret },
    });
    const before = idp.tokenRequests;
    const apiKeyCaller = new ExchangeIdentity('upstream', config, config.auth as OAuth2AuthConfig, { principal: person('api_key', 'cfx_abcdefghijkl_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG') }, oauthDeps());
    const headerCaller = new ExchangeIdentity('upstream', config, config.auth as OAuth2AuthConfig, { principal: person('header') }, oauthDeps());
    closers.push(() => apiKeyCaller.close(), () => headerCaller.close());
    await expect(apiKeyCaller.ready()).rejects.toMatchObject({ kind: 'misconfigured', message: "this server exchanges the caller's own OAuth token; API key callers have none to exchange" });
    await expect(apiKeyCaller.credentials()).rejects.toMatchObject({ kind: 'misconfigured' });
    await expect(headerCaller.ready()).rejects.toMatchObject({ kind: 'misconfigured', message: "this server exchanges the caller's own OAuth token; trusted-header callers have none to exchange" });
    expect(idp.tokenRequests).toBe(before);
  });

  it('reports an authorization server error page by its status and code alone, and no secret anywhere', async () => {
    const as = await scriptedServer();
    const upstream = await movingUpstream(as.issuer);
    as.answer = () => ({ status: 500, contentType: 'text/html', body: `<html><body>client conflux-test sent ${SECRET}; we crashed</body></html>` });
    const log: string[] = [];
    const config = serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'conflux-test', clientSecret: 'env://CLIENT_SECRET' } });
    const connection = connectionFor(config, new ServiceIdentity('upstream', config, config.auth as OAuth2AuthConfig, oauthDeps({ log })), log);
    connection.start();
    await waitFor(() => connection.lastError !== undefined, 15_000, 'the token request to fail');
    expect(connection.lastError).toBe("the authorization server failed to answer the gateway's client (HTTP 500, server_error)");
    const toolError = await connection.request('tools/list', undefined).catch((error: unknown) => error as Error);
    expect(toolError).toBeInstanceOf(UpstreamAuthError);
    expect(toolError.message).toBe(connection.lastError);
    expect(upstream.mcpRequests).toBe(0);

    // An OAuth error whose description quotes the secret keeps its description, redacted.
    as.answer = () => ({ status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: `the secret ${SECRET} is not accepted here` }) });
    const other = serviceIdentity(config, oauthDeps({ log }));
    await expect(other.ready()).rejects.toMatchObject({ kind: 'failed', message: "the authorization server refused the gateway's client (invalid_request: the secret [redacted] is not accepted here)" });

    expect(log.join('')).toContain('could not get an upstream access token');
    expect(log.join('')).not.toContain(SECRET);
  });

  it('keeps serving the current token while its renewal hangs, and renews it in the background', async () => {
    const as = await scriptedServer(60);
    const upstream = await movingUpstream(as.issuer);
    const deps = oauthDeps();
    const identity = serviceIdentity(serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'env://CLIENT_SECRET' } }), deps);
    await identity.ready();
    const current = `Bearer ${as.issued[0]}`;
    expect((await identity.credentials()).headers.authorization).toBe(current);

    // 55 s into a 60 s token: within its renewal window, still valid.
    deps.advance(55_000);
    as.answer = () => 'hang';
    expect((await identity.credentials()).headers.authorization).toBe(current);
    await waitFor(() => as.requests.length === 2, 10_000, 'the background renewal');
    // The renewal is still unanswered, and calls go on with the current token, asking for no other.
    expect((await identity.credentials()).headers.authorization).toBe(current);
    expect(as.requests).toHaveLength(2);
    expect(as.requests[1]!.answered).toBe(false);

    as.releaseHung();
    await waitFor(async () => (await identity.credentials()).headers.authorization === `Bearer ${as.issued[1]}`, 10_000, 'the renewed token');
  });

  it('gives a token request one deadline, then waits before asking again', async () => {
    const as = await scriptedServer();
    const upstream = await movingUpstream(as.issuer);
    const deps = oauthDeps();
    const failures: string[] = [];
    const identity = serviceIdentity(
      serverConfig({ url: upstream.url, connectTimeout: 1, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'env://CLIENT_SECRET' } }),
      { ...deps, onTokenRefreshFailed: (server) => failures.push(server) },
    );
    as.answer = () => 'hang';
    await expect(identity.ready()).rejects.toMatchObject({ kind: 'failed', message: "could not get a token for the gateway's client: no answer within 1s" });
    await waitFor(() => as.requests[0]!.abandoned, 10_000, 'the token request to be abandoned');
    expect(failures).toEqual(['upstream']);

    // Within the cool-down the failure stands, and the authorization server is not asked.
    as.answer = () => 'issue';
    await expect(identity.ready()).rejects.toMatchObject({ message: "could not get a token for the gateway's client: no answer within 1s" });
    await expect(identity.credentials()).rejects.toMatchObject({ kind: 'failed' });
    expect(as.requests).toHaveLength(1);

    deps.advance(6_000);
    await identity.ready();
    expect(as.requests).toHaveLength(2);
    expect((await identity.credentials()).headers.authorization).toBe(`Bearer ${as.issued[0]}`);
  });

  it('ends a pending token request when closed, and gives no credentials after', async () => {
    const as = await scriptedServer();
    const upstream = await movingUpstream(as.issuer);
    const failures: string[] = [];
    const identity = serviceIdentity(serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'env://CLIENT_SECRET' } }), oauthDeps({ failures }));
    as.answer = () => 'hang';
    const ready = identity.ready();
    await waitFor(() => as.requests.length === 1, 10_000, 'the token request');
    identity.close();
    await expect(ready).rejects.toMatchObject({ kind: 'failed', message: expect.stringContaining('closed') });
    await waitFor(() => as.requests[0]!.abandoned, 10_000, 'the token request to be abandoned');
    await expect(identity.credentials()).rejects.toMatchObject({ kind: 'failed', message: expect.stringContaining('closed') });
    await expect(identity.ready()).rejects.toMatchObject({ kind: 'failed' });
    expect(await identity.onRejected(refusal(upstream))).toBe(false);
    expect(as.requests).toHaveLength(1);
    // Closing is not the authorization server's failure.
    expect(failures).toEqual([]);
  });

  it('sends nothing to the upstream when its connection is stopped while the token is being got', async () => {
    const as = await scriptedServer();
    const upstream = await movingUpstream(as.issuer);
    const config = serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'env://CLIENT_SECRET' } });
    as.answer = () => 'hang';
    const connection = connectionFor(config, new ServiceIdentity('upstream', config, config.auth as OAuth2AuthConfig, oauthDeps()));
    connection.start();
    await waitFor(() => as.requests.length === 1, 10_000, 'the token request');
    await connection.stop();
    await waitFor(() => as.requests[0]!.abandoned, 10_000, 'the token request to be abandoned');
    as.releaseHung();
    expect(upstream.mcpRequests).toBe(0);
    expect(as.requests).toHaveLength(1);
  });

  it('asks for the wider scope itself when insufficient_scope arrives during a renewal', async () => {
    const as = await scriptedServer();
    const upstream = await movingUpstream(as.issuer);
    const deps = oauthDeps();
    const identity = serviceIdentity(
      serverConfig({ url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'env://CLIENT_SECRET', scopes: ['mcp:tools'] } }),
      deps,
    );
    await identity.ready();
    deps.advance(10_000);
    as.answer = () => (as.requests.length === 2 ? 'hang' : 'issue');
    const renewal = identity.onRejected({ status: 401, wwwAuthenticate: 'Bearer error="invalid_token"' });
    await waitFor(() => as.requests.length === 2, 10_000, 'the renewal');
    const stepUp = identity.onRejected({ status: 403, wwwAuthenticate: 'Bearer error="insufficient_scope", scope="mcp:tools mcp:admin"' });
    as.releaseHung();
    expect(await renewal).toBe(true);
    expect(await stepUp).toBe(true);
    expect(as.requests.map((request) => request.params.get('scope'))).toEqual(['mcp:tools', 'mcp:tools', 'mcp:tools mcp:admin']);
    expect((await identity.credentials()).headers.authorization).toBe(`Bearer ${as.issued[2]}`);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { Secret } from '../../src/auth/secret.js';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { OAuthClientDeps } from '../../src/upstream/auth/oauth-client-deps.js';
import { ExchangeIdentity } from '../../src/upstream/auth/token-exchange.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps } from '../helpers/upstream-deps.js';

interface Whoami {
  sub: string;
  client_id?: string;
  scope?: string;
  jti: string;
  aud: string;
}

const person = (subject: string, token?: string, method: Principal['method'] = 'oauth'): Principal => ({
  id: `${subject}@example.com`,
  subject,
  email: `${subject}@example.com`,
  groups: [],
  roles: [],
  scopes: [],
  method,
  ...(token ? { token: new Secret(token) } : {}),
});

/**
 * RFC 8693 token exchange at the connection level: each connection exchanges its caller's own
 * token at the configured authorization server, so two callers reach the upstream as two
 * different identities, and a caller without an OAuth or JWT token (an API key) is refused.
 */
describe('token exchange identity', () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let config: HttpServerConfig;
  const open: UpstreamConnection[] = [];
  const refreshFailures: string[] = [];

  beforeAll(async () => {
    idp = await startIdentityProvider({ resources: [], tokenExchange: true });
    upstream = await startProtectedUpstream({ issuer: idp.issuer, requiredScopes: ['mcp:tools'] });
    idp.addResource(upstream.url);
    config = testConfig({
      exchanged: {
        url: upstream.url,
        auth: { method: 'oauth2', identity: 'exchange', authorizationServer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret, scopes: ['mcp:tools'] },
      },
    }).servers.exchanged as HttpServerConfig;
  }, 30_000);

  afterAll(async () => {
    await Promise.all(open.map((connection) => connection.stop()));
    await upstream?.close();
    await idp?.close();
  });

  const oauthDeps: OAuthClientDeps = {
    logger: silentLogger(),
    env: {},
    clientName: 'Conflux test',
    onTokenRefreshed: () => {},
    onTokenRefreshFailed: (_server, provider) => refreshFailures.push(provider),
  };

  function connectionFor(principal: Principal): UpstreamConnection {
    const auth = new ExchangeIdentity('exchanged', config, config.auth as OAuth2AuthConfig, { principal }, oauthDeps);
    const connection = new UpstreamConnection('exchanged', config, directDeps({ reconnect: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 3 }, auth }));
    open.push(connection);
    connection.start();
    return connection;
  }

  const whoami = async (connection: UpstreamConnection): Promise<Whoami> => {
    const result = (await connection.request('tools/call', { name: 'whoami', arguments: {} })) as { content: { text: string }[] };
    return JSON.parse(result.content[0]!.text) as Whoami;
  };

  it('reaches the upstream as each caller, with a token exchanged for their own', async () => {
    const alice = connectionFor(person('alice', await idp.signToken({ sub: 'alice', aud: 'conflux-gateway' })));
    const bob = connectionFor(person('bob', await idp.signToken({ sub: 'bob', aud: 'conflux-gateway' })));
    await waitFor(() => alice.state === 'ready' && bob.state === 'ready', 15_000, 'both connections ready');
    const [asAlice, asBob] = await Promise.all([whoami(alice), whoami(bob)]);
    expect(asAlice).toMatchObject({ sub: 'alice', client_id: idp.client.clientId, aud: upstream.url, scope: 'mcp:tools' });
    expect(asBob).toMatchObject({ sub: 'bob', client_id: idp.client.clientId, aud: upstream.url, scope: 'mcp:tools' });
    // Each connection keeps its own exchanged token for the next call.
    expect((await whoami(alice)).jti).toBe(asAlice.jti);
    expect(upstream.seen.filter((token) => token.sub === 'alice').every((token) => token.jti === asAlice.jti)).toBe(true);
  });

  it('refuses a caller that authenticated without a token, saying why, without retrying', async () => {
    const anonymous = connectionFor(person('carol'));
    await waitFor(() => anonymous.state === 'misconfigured', 15_000, 'the connection to give up');
    expect(anonymous.lastError).toBe("this server needs the caller's own token; the caller authenticated without one");
    await expect(whoami(anonymous)).rejects.toThrow("the caller authenticated without one");
  });

  it('refuses an API key caller without sending its key anywhere', async () => {
    const before = idp.tokenRequests;
    const keyed = connectionFor(person('dave', 'cfx_abcdefghijkl_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG', 'api_key'));
    await waitFor(() => keyed.state === 'misconfigured', 15_000, 'the connection to give up');
    expect(keyed.lastError).toBe("this server exchanges the caller's own OAuth token; API key callers have none to exchange");
    expect(idp.tokenRequests).toBe(before);
    expect(upstream.seen.some((token) => token.sub === 'dave')).toBe(false);
  });

  it('reports a subject token the authorization server refuses, and counts the failure', async () => {
    const forged = connectionFor(person('mallory', await idp.signToken({ sub: 'mallory', aud: 'conflux-gateway' }, { key: 'foreign' })));
    await waitFor(() => forged.lastError !== undefined, 15_000, 'the exchange to fail');
    expect(forged.state).not.toBe('ready');
    expect(forged.lastError).toContain('invalid_grant');
    expect(refreshFailures).toContain(new URL(idp.issuer).host);
  });
});

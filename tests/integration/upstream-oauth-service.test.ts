import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { connectClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/** Short, so a test sees a token expire; long enough that a burst of calls fits in one token's life. */
const TOKEN_TTL_SECONDS = 4;

interface Whoami {
  sub: string;
  client_id?: string;
  scope?: string;
  jti: string;
  aud: string;
}

/**
 * The gateway's service identity (client credentials) towards an OAuth-protected upstream, with
 * a real authorization server: found from the upstream's 401 alone (nothing about the
 * authorization server in the gateway's config), renewed across an expiry, one token request
 * for a burst of calls, refused clients reported, `insufficient_scope` stepped up, and the
 * other client authentications (private_key_jwt, dynamic registration).
 */
describe('service identity towards an OAuth-protected upstream', () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let gateway: RunningGateway;
  let dir: string;
  let keyClientId: string;

  beforeAll(async () => {
    idp = await startIdentityProvider({ resources: [], accessTokenTtlSeconds: TOKEN_TTL_SECONDS });
    upstream = await startProtectedUpstream({ issuer: idp.issuer, toolScopes: { admin_tool: ['mcp:admin'] } });
    idp.addResource(upstream.url);

    // A client that authenticates with a signed assertion (private_key_jwt), registered with its public key.
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const registered = await fetch(idp.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'key client',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'RS256',
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] },
      }),
    });
    expect(registered.status).toBe(201);
    keyClientId = ((await registered.json()) as { client_id: string }).client_id;
    dir = await mkdtemp(join(tmpdir(), 'conflux-oauth-service-'));
    const keyFile = join(dir, 'client-key.pem');
    await writeFile(keyFile, await exportPKCS8(privateKey));

    const url = upstream.url;
    const secret = { method: 'oauth2', identity: 'service', clientId: idp.client.clientId, clientSecret: idp.client.clientSecret };
    gateway = await startGateway(
      testConfig({
        service: { url, auth: secret },
        stepup: { url, auth: { ...secret, scopes: ['mcp:tools'] } },
        keyed: { url, auth: { method: 'oauth2', identity: 'service', clientId: keyClientId, privateKey: pathToFileURL(keyFile).href } },
        registering: { url, auth: { method: 'oauth2', identity: 'service' } },
        refused: { url, auth: { ...secret, clientSecret: 'not-the-secret-0123456789' } },
        configured: { url, auth: { ...secret, authorizationServer: idp.issuer } },
        unreachable: { url, auth: { ...secret, authorizationServer: 'http://127.0.0.1:9' } },
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await idp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const status = (name: string) => gateway.conflux.upstreams.statuses().find((s) => s.name === name);
  const whoami = async (server: string): Promise<Whoami> => {
    const client = await connectClient(gateway.url);
    try {
      const result = await client.client.callTool({ name: `${server}__whoami`, arguments: {} });
      expect(result.isError, textOf(result)).not.toBe(true);
      return JSON.parse(textOf(result)) as Whoami;
    } finally {
      await client.close();
    }
  };
  const counter = async (name: 'oauthTokenRefreshes' | 'oauthTokenRefreshFailures', labels: Record<string, string>) =>
    (await gateway.conflux.metrics[name].get()).values
      .filter((v) => Object.entries(labels).every(([k, value]) => (v.labels as Record<string, unknown>)[k] === value))
      .reduce((sum, v) => sum + v.value, 0);

  it('finds the authorization server from the upstream 401 alone and calls as its client', async () => {
    expect(status('service')?.state).toBe('ready');
    const me = await whoami('service');
    expect(me).toMatchObject({ sub: idp.client.clientId, client_id: idp.client.clientId, aud: upstream.url });
  });

  it('renews the token across its expiry, counting the renewal', async () => {
    const first = await whoami('service');
    const before = await counter('oauthTokenRefreshes', { server_id: 'service' });
    const client = await connectClient(gateway.url);
    try {
      let latest = first;
      await waitFor(
        async () => {
          const result = await client.client.callTool({ name: 'service__whoami', arguments: {} });
          latest = JSON.parse(textOf(result)) as Whoami;
          return latest.jti !== first.jti;
        },
        30_000,
        'a call made with a renewed token',
      );
      expect(latest).toMatchObject({ client_id: idp.client.clientId, aud: upstream.url });
      expect(latest.jti).not.toBe(first.jti);
    } finally {
      await client.close();
    }
    expect(await counter('oauthTokenRefreshes', { server_id: 'service' })).toBeGreaterThan(before);
  });

  it('asks for one token for twenty calls made at once with an expired one', async () => {
    const client = await connectClient(gateway.url);
    try {
      const first = JSON.parse(textOf(await client.client.callTool({ name: 'service__whoami', arguments: {} }))) as Whoami;
      const madeAt = Date.now();
      // The token the call above used has certainly expired after its whole lifetime.
      await waitFor(() => Date.now() > madeAt + TOKEN_TTL_SECONDS * 1000 + 100, 30_000, 'the token to expire');
      const requestsBefore = idp.tokenRequests;
      const results = await Promise.all(Array.from({ length: 20 }, () => client.client.callTool({ name: 'service__whoami', arguments: {} })));
      const seen = results.map((result) => JSON.parse(textOf(result)) as Whoami);
      expect(idp.tokenRequests - requestsBefore).toBe(1);
      expect(new Set(seen.map((me) => me.jti)).size).toBe(1);
      expect(seen[0]!.jti).not.toBe(first.jti);
    } finally {
      await client.close();
    }
  });

  it('reports a client the authorization server refuses as misconfigured, and counts the failure', async () => {
    expect(status('refused')).toMatchObject({ state: 'misconfigured', nextRetryAt: undefined });
    expect(status('refused')?.lastError).toContain('invalid_client');
    expect(status('refused')?.lastError).not.toContain('not-the-secret');
    expect(await counter('oauthTokenRefreshFailures', { provider: new URL(idp.issuer).host })).toBeGreaterThanOrEqual(1);
    expect(status('service')?.state).toBe('ready');
  });

  it('uses a configured authorization server instead of discovering one', async () => {
    expect(status('configured')?.state).toBe('ready');
    expect(await whoami('configured')).toMatchObject({ client_id: idp.client.clientId, aud: upstream.url });
  });

  it('retries with backoff while the authorization server cannot be reached', async () => {
    const restarts = async () => (await gateway.conflux.metrics.restarts.get()).values.filter((v) => v.labels.server_id === 'unreachable').reduce((sum, v) => sum + v.value, 0);
    // Not misconfigured: it may answer later, so the connection is tried again.
    await waitFor(async () => (await restarts()) >= 1, 15_000, 'a reconnect attempt');
    expect(status('unreachable')?.state).toBe('down');
    expect(status('unreachable')?.lastError).toMatch(/^could not get a token for the gateway's client: fetch failed/);
    expect(status('service')?.state).toBe('ready');
  });

  it('steps up on insufficient_scope: asks again with the union of the scopes', async () => {
    expect((await whoami('stepup')).scope).toBe('mcp:tools');
    const client = await connectClient(gateway.url);
    try {
      const result = await client.client.callTool({ name: 'stepup__admin_tool', arguments: {} });
      expect(result.isError, textOf(result)).not.toBe(true);
      expect(textOf(result)).toBe('admin_tool done');
    } finally {
      await client.close();
    }
    expect((await whoami('stepup')).scope?.split(' ').sort()).toEqual(['mcp:admin', 'mcp:tools']);
  });

  it('authenticates with a private_key_jwt assertion signed with a key from a credential reference', async () => {
    expect(status('keyed')?.state).toBe('ready');
    expect(await whoami('keyed')).toMatchObject({ client_id: keyClientId, aud: upstream.url });
  });

  it('registers itself (RFC 7591) when no client is configured', async () => {
    expect(status('registering')?.state).toBe('ready');
    const me = await whoami('registering');
    expect(me.client_id).toBeTruthy();
    expect(me.client_id).not.toBe(idp.client.clientId);
    expect(me.client_id).not.toBe(keyClientId);
  });
});

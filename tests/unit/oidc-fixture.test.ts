import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';

const RESOURCE = 'http://127.0.0.1:9/mcp';
const OPAQUE_RESOURCE = 'http://127.0.0.1:9/opaque';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

describe('OIDC provider test fixture', () => {
  let idp: TestIdentityProvider;
  // oidc-provider prints warnings/notices for unconfigured defaults (and on Node < 22); the fixture must not.
  const consoleCalls: unknown[][] = [];
  let spies: { mockRestore(): void }[] = [];

  beforeAll(async () => {
    spies = (['log', 'info', 'warn', 'error'] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void consoleCalls.push(args)),
    );
    idp = await startIdentityProvider({
      resources: [RESOURCE],
      opaqueResources: [OPAQUE_RESOURCE],
      accounts: { alice: { email: 'alice@example.com', groups: ['engineering'] } },
    });
  });

  afterAll(async () => {
    for (const spy of spies) spy.mockRestore();
    await idp?.close();
  });

  it('starts on a loopback issuer', () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('serves discovery at both well-known paths', async () => {
    const oidc = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
    expect(oidc.status).toBe(200);
    const metadata = (await oidc.json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(idp.issuer);
    expect(metadata.jwks_uri).toBe(idp.jwksUri);
    expect(metadata.token_endpoint).toBe(idp.tokenEndpoint);
    expect(metadata.registration_endpoint).toBe(idp.registrationEndpoint);
    expect(metadata.introspection_endpoint).toBe(idp.introspectionEndpoint);
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.token_endpoint_auth_methods_supported).toContain('none');
    expect(metadata.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'client_credentials', 'refresh_token']),
    );

    const oauth = await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`);
    expect(oauth.status).toBe(200);
    expect(((await oauth.json()) as Record<string, unknown>).issuer).toBe(idp.issuer);
  });

  it('issues client_credentials JWT access tokens for a resource', async () => {
    const token = await idp.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' });
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: idp.issuer,
      audience: RESOURCE,
      typ: 'at+jwt',
    });
    expect(protectedHeader.kid).toBe(idp.currentKid);
    expect(String(payload.scope).split(' ')).toContain('mcp:tools');
    expect(payload.client_id).toBe('conflux-test');
    expect(payload.sub).toBe('conflux-test');
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('rejects unknown resources', async () => {
    await expect(idp.clientCredentialsToken({ resource: 'http://127.0.0.1:9/other', scope: 'mcp:tools' })).rejects.toThrow(
      /invalid_target/,
    );
  });

  it('issues opaque, introspectable tokens for opaque resources', async () => {
    const token = await idp.clientCredentialsToken({ resource: OPAQUE_RESOURCE, scope: 'mcp:admin' });
    expect(token.split('.')).toHaveLength(1);
    const response = await fetch(idp.introspectionEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${idp.client.clientId}:${idp.client.clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ active: true, aud: OPAQUE_RESOURCE, scope: 'mcp:admin', client_id: 'conflux-test' });
  });

  it('runs a full authorization-code + PKCE flow for a dynamically registered public client', async () => {
    const registration = await fetch(idp.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'fixture self-test',
        redirect_uris: [REDIRECT_URI, 'http://localhost:43210/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: 'mcp:tools mcp:admin', // the MCP SDK registers with the resource's scopes_supported
      }),
    });
    const client = (await registration.json()) as Record<string, unknown>;
    expect(registration.status, JSON.stringify(client)).toBe(201);
    expect(client.token_endpoint_auth_method).toBe('none');
    const clientId = String(client.client_id);

    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const authorizationUrl = new URL(`${idp.issuer}/auth`);
    authorizationUrl.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      scope: 'mcp:tools mcp:admin',
      state: 'xyz',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: RESOURCE,
    }).toString();
    const code = await idp.authorize(authorizationUrl);

    const tokenResponse = await fetch(idp.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: clientId,
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
        resource: RESOURCE,
      }),
    });
    const tokens = (await tokenResponse.json()) as Record<string, unknown>;
    expect(tokenResponse.status, JSON.stringify(tokens)).toBe(200);
    const { payload } = await jwtVerify(String(tokens.access_token), createRemoteJWKSet(new URL(idp.jwksUri)), {
      issuer: idp.issuer,
      audience: RESOURCE,
    });
    expect(payload.sub).toBe('alice');
    expect(payload.client_id).toBe(clientId);
    expect(payload.email).toBe('alice@example.com');
    expect(payload.groups).toEqual(['engineering']);
    expect(String(payload.scope).split(' ').sort()).toEqual(['mcp:admin', 'mcp:tools']);

    // a denied consent surfaces as the provider's error
    await expect(idp.authorize(authorizationUrl, 'bob', { deny: true })).rejects.toThrow(/access_denied/);
  });

  it('rotates keys under the same issuer and counts JWKS requests', async () => {
    const before = idp.jwksRequests;
    const oldKid = idp.currentKid;
    const jwksUrl = new URL(idp.jwksUri);
    // a fresh remote set per phase so nothing is cached across the rotation
    await jwtVerify(await idp.signToken({}), createRemoteJWKSet(jwksUrl), { audience: RESOURCE });
    expect(idp.jwksRequests).toBe(before + 1);

    await idp.rotateKeys();
    expect(idp.currentKid).not.toBe(oldKid);
    const signed = await idp.signToken({ sub: 'bob' });
    expect(decodeProtectedHeader(signed).kid).toBe(idp.currentKid);
    const { payload } = await jwtVerify(signed, createRemoteJWKSet(jwksUrl), { issuer: idp.issuer, audience: RESOURCE });
    expect(payload.sub).toBe('bob');

    const issued = await idp.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' });
    expect(decodeProtectedHeader(issued).kid).toBe(idp.currentKid);

    const published = (await (await fetch(idp.jwksUri)).json()) as { keys: { kid: string; d?: string }[] };
    expect(published.keys.map((key) => key.kid)).toEqual([idp.currentKid, oldKid]);
    expect(published.keys.every((key) => key.d === undefined)).toBe(true);

    await idp.rotateKeys({ dropOld: true });
    const onlyNew = (await (await fetch(idp.jwksUri)).json()) as { keys: { kid: string }[] };
    expect(onlyNew.keys.map((key) => key.kid)).toEqual([idp.currentKid]);
  });

  it('signs foreign-key and tampered tokens that fail verification', async () => {
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    await expect(jwtVerify(await idp.signToken({}, { key: 'foreign' }), jwks)).rejects.toThrow();
    await expect(jwtVerify(await idp.signToken({ exp: Math.floor(Date.now() / 1000) - 60 }), jwks)).rejects.toThrow(/exp/);
    const noExp = await idp.signToken({ exp: undefined });
    expect((await jwtVerify(noExp, jwks)).payload.exp).toBeUndefined();
  });

  it('closes without leaving the port open', async () => {
    const other = await startIdentityProvider({ resources: [RESOURCE] });
    await other.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' }); // keep-alive socket open
    await other.close();
    await expect(fetch(`${other.issuer}/jwks`)).rejects.toThrow();
  });

  it('stayed silent on the console and had no internal errors throughout', () => {
    expect(consoleCalls).toEqual([]);
    expect(idp.serverErrors).toEqual([]);
  });
});

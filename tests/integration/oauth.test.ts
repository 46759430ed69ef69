import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { startIdentityProvider, TEST_CLIENT_ID, TEST_CLIENT_SECRET, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { bearer, clientWithHeaders, initializeRequest } from '../helpers/auth.js';
import { freePort, startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';

/** What a desktop MCP client keeps between the steps of the authorization code flow. */
class MemoryOAuthProvider implements OAuthClientProvider {
  client: OAuthClientInformationMixed | undefined;
  saved: OAuthTokens | undefined;
  verifier = '';
  authorizationUrl: URL | undefined;
  readonly redirectUrl = 'http://127.0.0.1:9/callback';
  get clientMetadata(): OAuthClientMetadata {
    return { client_name: 'oauth-test', redirect_uris: [this.redirectUrl], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const OPAQUE_AUDIENCE = 'https://opaque.conflux.test/mcp';

describe('OAuth 2.1 resource server', () => {
  let idp: TestIdentityProvider;
  let gateway: RunningGateway;
  let base: string;
  let resource: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    resource = `${base}/mcp`;
    idp = await startIdentityProvider({
      resources: [resource],
      opaqueResources: [OPAQUE_AUDIENCE],
      accounts: { alice: { email: 'alice@example.com', groups: ['engineering'] } },
    });
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha') },
        {
          auth: {
            oauth: {
              issuer: idp.issuer,
              scopes: ['mcp:tools'],
              audiences: [OPAQUE_AUDIENCE],
              introspection: { clientId: TEST_CLIENT_ID, clientSecret: TEST_CLIENT_SECRET },
              jwksCooldownSeconds: 0,
            },
          },
          access: { grants: [{ group: 'engineering', servers: ['*'] }] },
        },
      ),
      { port },
    );
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    await idp?.close();
  });

  it('publishes protected-resource metadata (RFC 9728) and the issuer\'s metadata (RFC 8414)', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const response = await fetch(base + path);
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(await response.json()).toMatchObject({ resource, authorization_servers: [idp.issuer], scopes_supported: ['mcp:tools'], bearer_methods_supported: ['header'] });
    }
    const metadata = (await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(idp.issuer);
    expect(metadata.token_endpoint).toBe(idp.tokenEndpoint);
    expect(metadata.registration_endpoint).toBe(idp.registrationEndpoint);
  });

  it('challenges a request without a token with the metadata URL and the scope', async () => {
    const response = await initializeRequest(resource);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`);
    const rest = await fetch(`${base}/api/v1/tools`);
    expect(rest.status).toBe(401);
    expect(rest.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it('lets the SDK client sign in end to end: discovery, registration, PKCE, resource, token, tools/list', async () => {
    const provider = new MemoryOAuthProvider();
    const first = new Client({ name: 'oauth-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    await expect(first.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
    const authorizationUrl = provider.authorizationUrl!;
    expect(authorizationUrl.origin).toBe(idp.issuer);
    expect(authorizationUrl.searchParams.get('resource')).toBe(resource);
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(provider.client?.client_id).toBeTruthy(); // dynamically registered

    await transport.finishAuth(await idp.authorize(authorizationUrl, 'alice'));
    const claims = decodeJwt(provider.saved!.access_token);
    expect(claims.aud).toBe(resource);
    expect(claims.sub).toBe('alice');

    const client = new Client({ name: 'oauth-test', version: '1.0.0' });
    const signedIn = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    await client.connect(signedIn);
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('alpha__echo');
      const result = await client.callTool({ name: 'alpha__echo', arguments: { text: 'signed in' } });
      expect(result.content).toEqual([{ type: 'text', text: 'alpha: signed in' }]);
    } finally {
      await signedIn.terminateSession().catch(() => {});
      await client.close();
    }
    const me = (await (await fetch(`${base}/api/v1/me`, { headers: bearer(provider.saved!.access_token) })).json()) as Record<string, unknown>;
    expect(me).toMatchObject({ principal: 'alice@example.com', subject: 'alice', groups: ['engineering'], method: 'oauth', servers: { alpha: 'call' } });
    expect(me.scopes).toContain('mcp:tools');
  });

  const refusal = async (token: string) => {
    const response = await initializeRequest(resource, bearer(token));
    return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '', body: await response.json() };
  };

  it('refuses expired tokens, other audiences, foreign keys and other issuers with 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await refusal(await idp.signToken({ iat: now - 900, exp: now - 600 }));
    expect(expired.status).toBe(401);
    expect(expired.challenge).toContain('error="invalid_token"');
    expect(expired.challenge).toContain('expired');
    const audience = await refusal(await idp.signToken({ aud: 'http://127.0.0.1:1/mcp' }));
    expect(audience.status).toBe(401);
    expect(audience.challenge).toContain('another audience');
    const foreign = await refusal(await idp.signToken({}, { key: 'foreign' }));
    expect(foreign.status).toBe(401);
    const issuer = await refusal(await idp.signToken({ iss: 'http://127.0.0.1:1' }));
    expect(issuer.status).toBe(401);
    expect(issuer.challenge).toContain('another issuer');
    expect((await refusal('not-a-token')).status).toBe(401);
  });

  it('answers a token without the required scope with 403 insufficient_scope', async () => {
    const { status, challenge, body } = await refusal(await idp.signToken({ scope: 'profile' }));
    expect(status).toBe(403);
    // The code MCP answers any request outside the caller's rights with.
    expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32003 }, id: null });
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="mcp:tools"');
  });

  it('follows a key rotation: a token signed with the new key is accepted once the keys are refetched', async () => {
    const before = await clientWithHeaders(resource, bearer(await idp.signToken({ sub: 'alice', email: 'alice@example.com', groups: ['engineering'] })));
    await before.close();
    const fetches = idp.jwksRequests;
    await idp.rotateKeys();
    const token = await idp.signToken({ sub: 'alice', email: 'alice@example.com', groups: ['engineering'] });
    const after = await clientWithHeaders(resource, bearer(token));
    try {
      expect((await after.client.listTools()).tools.length).toBeGreaterThan(0);
    } finally {
      await after.close();
    }
    expect(idp.jwksRequests).toBe(fetches + 1);
  });

  it('checks opaque tokens by introspection (RFC 7662)', async () => {
    const token = await idp.clientCredentialsToken({ resource: OPAQUE_AUDIENCE, scope: 'mcp:tools' });
    expect(token.split('.').length).not.toBe(3);
    const me = await fetch(`${base}/api/v1/me`, { headers: bearer(token) });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ principal: TEST_CLIENT_ID, method: 'oauth' });
    expect((await fetch(`${base}/api/v1/me`, { headers: bearer(`${token}x`) })).status).toBe(401);
  });
});

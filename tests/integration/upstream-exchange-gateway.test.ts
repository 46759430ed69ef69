import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { startIdentityProvider, TOKEN_EXCHANGE_GRANT, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { freshPglite } from '../helpers/databases.js';
import { freePort, openSession, startGateway, testConfig, textOf, waitFor, type ClientSession, type RunningGateway } from '../helpers/gateway.js';

interface Whoami {
  sub: string;
  client_id?: string;
  aud: string | string[];
  jti: string;
}

/** A caller's MCP session with the gateway: the SDK's own client, a fixed Authorization (or API key) header. */
type Session = ClientSession<Client>;

const openCallerSession = (url: string, headers: Record<string, string>): Promise<Session> =>
  openSession(new Client({ name: 'exchange-caller', version: '1.0.0' }), new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));

/**
 * RFC 8693 token exchange through the gateway, end to end: callers sign in to the gateway with
 * tokens the authorization server issued for the gateway (downstream OAuth), and a server with
 * `identity: exchange` reaches the protected upstream with a token exchanged for each caller's
 * own, by the gateway's client, for the upstream's resource. What the upstream receives is
 * watched on its side of the wire (every request's Authorization header, refused ones too), so
 * "the caller's own token is never forwarded" is observed, not inferred.
 */
describe('token exchange through the gateway', { timeout: 120_000 }, () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  let resource: string;
  const tokens: Record<string, string> = {};
  /** Every Authorization header the upstream's HTTP server received, in order (none: `''`). */
  const reachedUpstream: string[] = [];
  let upstreamPort = 0;
  const watch = ({ request, server }: { request: IncomingMessage; server: Server }) => {
    if ((server.address() as AddressInfo | null)?.port === upstreamPort) reachedUpstream.push(request.headers.authorization ?? '');
  };

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    resource = `${base}/mcp`;
    idp = await startIdentityProvider({ resources: [resource], tokenExchange: true, accounts: { alice: { email: 'alice@example.com' }, bob: { email: 'bob@example.com' } } });
    upstream = await startProtectedUpstream({ issuer: idp.issuer });
    idp.addResource(upstream.url);
    upstreamPort = Number(new URL(upstream.url).port);
    subscribe('http.server.request.start', watch as (message: unknown) => void);
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(
      testConfig(
        {
          exchanged: {
            url: upstream.url,
            auth: { method: 'oauth2', identity: 'exchange', authorizationServer: idp.issuer, clientId: idp.client.clientId, clientSecret: idp.client.clientSecret, scopes: ['mcp:tools'] },
          },
        },
        { auth: { oauth: { issuer: idp.issuer, resource }, apiKeys: true }, access: { defaultLevel: 'call' } },
      ),
      { database, port },
    );
    for (const account of ['alice', 'bob']) tokens[account] = await idp.userToken({ account, resource });
  }, 60_000);

  afterAll(async () => {
    unsubscribe('http.server.request.start', watch as (message: unknown) => void);
    await gateway?.stop();
    await database?.close();
    await upstream?.close();
    await idp?.close();
  });

  const bearer = (account: string) => ({ authorization: `Bearer ${tokens[account]!}` });

  /** Calls `exchanged__whoami` in the caller's session, once the server's tools are listed (the first caller's instance lists them). */
  const whoamiIn = async (session: Session): Promise<Whoami> => {
    await waitFor(async () => (await session.client.listTools()).tools.some((tool) => tool.name === 'exchanged__whoami'), 30_000, 'the exchanged server to list its tools');
    const result = await session.client.callTool({ name: 'exchanged__whoami', arguments: {} });
    expect(result.isError, textOf(result)).toBeFalsy();
    return JSON.parse(textOf(result)) as Whoami;
  };

  it("the callers' tokens are the authorization server's, for the gateway", () => {
    expect(decodeJwt(tokens.alice!)).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: resource });
    expect(decodeJwt(tokens.bob!)).toMatchObject({ iss: idp.issuer, sub: 'bob', aud: resource });
  });

  it('reaches the upstream as each caller, with a token the gateway exchanged for the upstream: never the caller\'s own', async () => {
    const alice = await openCallerSession(gateway.url, bearer('alice'));
    const bob = await openCallerSession(gateway.url, bearer('bob'));
    try {
      const asAlice = await whoamiIn(alice);
      const asBob = await whoamiIn(bob);
      expect(asAlice).toMatchObject({ sub: 'alice', client_id: idp.client.clientId, aud: upstream.url });
      expect(asBob).toMatchObject({ sub: 'bob', client_id: idp.client.clientId, aud: upstream.url });
      // Not the callers' own tokens (those name the gateway as audience).
      expect(asAlice.jti).not.toBe(decodeJwt(tokens.alice!).jti);
      expect(asBob.jti).not.toBe(decodeJwt(tokens.bob!).jti);
      // Each session keeps its caller's exchanged token.
      expect((await whoamiIn(alice)).sub).toBe('alice');
      expect((await whoamiIn(bob)).sub).toBe('bob');
    } finally {
      await alice.close();
      await bob.close();
    }

    // What the upstream's side of the wire saw: only tokens for itself, issued to the gateway's client.
    const presented = reachedUpstream.filter(Boolean);
    expect(presented.length).toBeGreaterThan(0);
    for (const header of presented) {
      const token = header.replace(/^Bearer /, '');
      expect(token).not.toBe(tokens.alice);
      expect(token).not.toBe(tokens.bob);
      expect(decodeJwt(token)).toMatchObject({ aud: upstream.url, client_id: idp.client.clientId });
    }
    expect(new Set(presented.map((header) => decodeJwt(header.replace(/^Bearer /, '')).sub))).toEqual(new Set(['alice', 'bob']));
    // The exchanges the authorization server answered: by the gateway's client, one per caller at least.
    const exchanges = idp.tokenLog.filter((entry) => entry.grantType === TOKEN_EXCHANGE_GRANT);
    expect(exchanges.length).toBeGreaterThanOrEqual(2);
    expect(exchanges.every((entry) => entry.clientId === idp.client.clientId && entry.error === undefined)).toBe(true);
  });

  it('does the same for a REST call (POST /api/v1/tools/{name}/call)', async () => {
    const call = async (account: string) => {
      const response = await fetch(`${base}/api/v1/tools/exchanged__whoami/call`, { method: 'POST', headers: { ...bearer(account), 'content-type': 'application/json' }, body: '{}' });
      expect(response.status).toBe(200);
      const { result } = (await response.json()) as { result: { isError?: boolean; content: { text: string }[] } };
      expect(result.isError).toBeFalsy();
      return JSON.parse(result.content[0]!.text) as Whoami;
    };
    expect(await call('bob')).toMatchObject({ sub: 'bob', client_id: idp.client.clientId, aud: upstream.url });
    expect(await call('alice')).toMatchObject({ sub: 'alice', client_id: idp.client.clientId, aud: upstream.url });
  });

  it('refuses an API-key caller, saying it has no token to exchange, and sends its key nowhere', async () => {
    const { key } = await gateway.conflux.apiKeys!.create({ name: 'ci-bot', subject: 'ci-bot', groups: [] });
    const tokenRequestsBefore = idp.tokenRequests;
    const upstreamRequestsBefore = reachedUpstream.length;

    const session = await openCallerSession(gateway.url, { 'x-api-key': key });
    try {
      const refused = await session.client.callTool({ name: 'exchanged__whoami', arguments: {} });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toContain('"exchanged"');
      expect(textOf(refused)).toContain("this server exchanges the caller's own OAuth token; API key callers have none to exchange");
    } finally {
      await session.close();
    }

    const rest = await fetch(`${base}/api/v1/tools/exchanged__whoami/call`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
    const body = await rest.text();
    // As on MCP, a tool error: the call was made, and the server refused to act for this caller.
    expect(rest.status, body).toBe(200);
    const { result } = JSON.parse(body) as { result: { isError?: boolean; content: { text: string }[] } };
    expect(result.isError).toBe(true);
    expect(result.content[0]!.text).toContain("this server exchanges the caller's own OAuth token; API key callers have none to exchange");

    expect(idp.tokenRequests).toBe(tokenRequestsBefore);
    expect(reachedUpstream.slice(upstreamRequestsBefore).some((header) => header.includes(key))).toBe(false);
    expect(body).not.toContain(key);
  });
});

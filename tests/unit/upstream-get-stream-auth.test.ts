import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpServerConfig, OAuth2AuthConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import { ServiceIdentity } from '../../src/upstream/auth/service-identity.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { startScriptedAuthorizationServer, type ScriptedAuthorizationServer } from '../fixtures/scripted-authorization-server.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';
import { directDeps } from '../helpers/upstream-deps.js';

/**
 * A 2025 Streamable HTTP server with sessions and a GET stream, letting through only the tokens
 * `valid` accepts (refused: 401 `invalid_token`). It counts the GET streams asked for, and can
 * end the open ones (as a server restart or a proxy timeout would).
 */
async function startSessionUpstream(valid: (token: string) => boolean) {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const streams = new Set<ServerResponse>();
  let gets = 0;
  const http = createServer(asyncRequestListener(async (req, res) => {
    if (!req.url?.startsWith('/mcp')) return void res.writeHead(404).end();
    const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    if (req.method === 'GET') gets++;
    if (!valid(token)) return void res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId) return void res.writeHead(404).end();
      const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (id) => void transports.set(id, created) });
      await createDemoServer('stream').connect(created);
      transport = created;
    }
    if (req.method === 'GET') {
      streams.add(res);
      res.once('close', () => streams.delete(res));
    }
    await transport.handleRequest(req, res);
  }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    get gets() {
      return gets;
    },
    get openStreams() {
      return streams.size;
    },
    endStreams: () => {
      for (const res of streams) res.socket?.destroy();
    },
    close: async () => {
      await Promise.all([...transports.values()].map((transport) => transport.close()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * The GET stream of a Streamable HTTP connection when its credentials cannot be renewed: it is
 * not reopened (asking the authorization server each time) until a request goes through again.
 */
describe('the GET stream of a connection whose credentials fail', () => {
  let as: ScriptedAuthorizationServer;
  let upstream: Awaited<ReturnType<typeof startSessionUpstream>>;
  let refusing = false;

  beforeAll(async () => {
    as = await startScriptedAuthorizationServer();
    upstream = await startSessionUpstream((token) => !refusing && as.issued.includes(token));
  });

  afterAll(async () => {
    await upstream?.close();
    await as?.close();
  });

  it('waits for a request to succeed before reopening, instead of asking for a token every second', async () => {
    const config = testConfig({
      streamed: { url: upstream.url, auth: { method: 'oauth2', identity: 'service', authorizationServer: as.issuer, clientId: 'c', clientSecret: 'a-client-secret' } },
    }).servers.streamed as HttpServerConfig;
    let skew = 0;
    const auth = new ServiceIdentity('streamed', config, config.auth as OAuth2AuthConfig, {
      logger: silentLogger(),
      env: {},
      clientName: 'Conflux test',
      onTokenRefreshed: () => {},
      onTokenRefreshFailed: () => {},
      now: () => Date.now() + skew,
    });
    const connection = new UpstreamConnection('streamed', config, directDeps({ reconnect: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 3 }, auth }));
    try {
      connection.start();
      await waitFor(() => connection.state === 'ready' && upstream.openStreams === 1, 15_000, 'the connection and its GET stream');

      // The upstream refuses the token, and the authorization server refuses to issue another.
      refusing = true;
      as.answer = () => ({ status: 503, body: JSON.stringify({ error: 'temporarily_unavailable' }) });
      skew += 10_000; // the token is no longer new: a refusal of it is worth asking for another
      const getsBefore = upstream.gets;
      const tokenRequestsBefore = as.requests.length;
      upstream.endStreams();
      await waitFor(() => upstream.gets === getsBefore + 1 && as.requests.length === tokenRequestsBefore + 1, 15_000, 'the reopening to be refused');
      // Reopened every second, the stream would have been asked for three more times by now.
      await new Promise((resolve) => setTimeout(resolve, 3500));
      expect(upstream.gets).toBe(getsBefore + 1);
      expect(as.requests.length).toBe(tokenRequestsBefore + 1);

      // Credentials work again: the next request goes through, and the stream reopens.
      refusing = false;
      await connection.request('tools/list', undefined);
      await waitFor(() => upstream.openStreams === 1, 15_000, 'the GET stream to reopen');
      expect(upstream.gets).toBe(getsBefore + 2);
    } finally {
      await connection.stop();
    }
  });
});

import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { connectClient, startGateway, testConfig, waitFor, type ConnectedClient, type RunningGateway } from '../helpers/gateway.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';

/** What the upstream was asked, in order. */
type Recorded = { method: 'subscribe' | 'unsubscribe'; uri: string };

/**
 * A Streamable HTTP upstream whose subscribe and unsubscribe answers take a while (so that the
 * gateway's concurrent requests overlap) and are recorded.
 */
async function startRecordingUpstream(): Promise<{ url: string; recorded: Recorded[]; close(): Promise<void> }> {
  const recorded: Recorded[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const slowly = () => new Promise((r) => setTimeout(r, 150));
  const http: Server = createServer(asyncRequestListener(async (req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId) return void res.writeHead(404).end();
      const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (id) => void transports.set(id, created) });
      const server = createDemoServer('rec');
      server.server.setRequestHandler(SubscribeRequestSchema, async (request) => {
        recorded.push({ method: 'subscribe', uri: request.params.uri });
        await slowly();
        return {};
      });
      server.server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
        recorded.push({ method: 'unsubscribe', uri: request.params.uri });
        await slowly();
        return {};
      });
      await server.connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  }));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    recorded,
    close: async () => {
      await Promise.all([...transports.values()].map((t) => t.close()));
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

describe('resource subscriptions shared by concurrent sessions', () => {
  let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>;
  let gateway: RunningGateway;
  let a: ConnectedClient;
  let b: ConnectedClient;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    gateway = await startGateway(testConfig({ rec: { url: upstream.url } }));
    a = await connectClient(gateway.url, 'ann');
    b = await connectClient(gateway.url, 'bob');
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await gateway?.stop();
    await upstream?.close();
  });

  it('subscribes the upstream once and unsubscribes it once when two sessions subscribe at the same time', async () => {
    const uri = 'demo://rec/static';
    await Promise.all([a.client.subscribeResource({ uri }), b.client.subscribeResource({ uri })]);
    expect(upstream.recorded).toEqual([{ method: 'subscribe', uri }]);
    await Promise.all([a.client.unsubscribeResource({ uri }), b.client.unsubscribeResource({ uri })]);
    expect(upstream.recorded).toEqual([
      { method: 'subscribe', uri },
      { method: 'unsubscribe', uri },
    ]);
  });

  it('subscribes the upstream again for a session that subscribes after the last one left', async () => {
    const uri = 'shared://readme';
    upstream.recorded.length = 0;
    // Subscribe, unsubscribe and subscribe again from different sessions, all at once: they are
    // applied in order, and the upstream ends up subscribed.
    await a.client.subscribeResource({ uri });
    await Promise.all([a.client.unsubscribeResource({ uri }), b.client.subscribeResource({ uri })]);
    expect(upstream.recorded.filter((r) => r.method === 'subscribe').length - upstream.recorded.filter((r) => r.method === 'unsubscribe').length).toBe(1);
    await b.close();
    // Closing the session releases its subscription: the upstream is unsubscribed.
    await waitFor(() => upstream.recorded.at(-1)?.method === 'unsubscribe', 5000, 'the upstream to be unsubscribed');
    expect(upstream.recorded.filter((r) => r.method === 'subscribe').length).toBe(upstream.recorded.filter((r) => r.method === 'unsubscribe').length);
  });
});

import { createServer, type Server } from 'node:http';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { sdkSessions, type SdkSessions } from '../fixtures/http-servers.js';
import { serveHandler } from '../fixtures/web-bridge.js';
import { freePort, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/** A 2025 Streamable HTTP upstream on a fixed loopback port, so that it can be stopped and started again where the gateway looks for it. */
interface Upstream {
  sessions: SdkSessions;
  stop(): Promise<void>;
}

async function startUpstream(port: number): Promise<Upstream> {
  const sessions = sdkSessions(() => createDemoServer('gamma'));
  const http: Server = createServer((req, res) => void sessions.handle(req, res));
  await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
  return {
    sessions,
    stop: async () => {
      await sessions.close();
      http.closeAllConnections();
      await new Promise<void>((done) => http.close(() => done()));
    },
  };
}

const STAYS = 'demo://gamma/item/1';
const LEAVES = 'demo://gamma/static';

describe('a 2025 upstream resource unsubscribed while the upstream is down', () => {
  let port: number;
  let upstream: Upstream | undefined;
  let gateway: RunningGateway;
  let client: Client;
  let transport: StreamableHTTPClientTransport;

  beforeAll(async () => {
    port = await freePort();
    upstream = await startUpstream(port);
    gateway = await startGateway(testConfig({ gamma: { url: `http://127.0.0.1:${port}/mcp` } }));
    client = new Client({ name: 'ann', version: '1.0.0' });
    transport = new StreamableHTTPClientTransport(new URL(gateway.url));
    await client.connect(transport);
  }, 60_000);
  afterAll(async () => {
    await transport?.terminateSession().catch(() => {});
    await client?.close();
    await gateway?.stop();
    await upstream?.stop();
  });

  /** What the upstream's current session says of `uri`: `notified` when it is subscribed to it. */
  const touch = async (uri: string) => textOf(await client.callTool({ name: 'gamma__touch', arguments: { uri } }));

  it('is not subscribed again on the session that replaces the lost one', async () => {
    await client.subscribeResource({ uri: LEAVES });
    await client.subscribeResource({ uri: STAYS });
    expect([await touch(LEAVES), await touch(STAYS)]).toEqual(['notified', 'notified']);

    await upstream!.stop();
    upstream = undefined;
    // The gateway answers the client; the upstream, stopped, hears nothing of it.
    await client.unsubscribeResource({ uri: LEAVES });

    upstream = await startUpstream(port);
    // A new upstream session, subscribed again to what is still held: the proof that the
    // subscriptions were carried over, sent in the order they were made.
    await waitFor(async () => (await touch(STAYS).catch(() => '')) === 'notified', 30_000, 'the new upstream session to be subscribed again');
    expect(upstream.sessions.opened).toBeGreaterThan(0);
    expect(await touch(LEAVES)).toBe('not subscribed');
  }, 60_000);
});

/**
 * A 2026-07-28 upstream on a fixed loopback port: sessionless, so a resource's updates reach the
 * gateway only on a `subscriptions/listen` stream whose filter names it.
 */
interface ModernUpstream {
  /** The resources named by each `subscriptions/listen` this instance was asked for, in order (each sorted). */
  readonly listens: string[][];
  notifyUpdated(uri: string): void;
  stop(): Promise<void>;
}

const MODERN_STAYS = 'notes://stays';
const MODERN_LEAVES = 'notes://leaves';

async function startModernUpstream(port: number): Promise<ModernUpstream> {
  const listens: string[][] = [];
  const handler = createMcpHandler(
    () => {
      const server = new McpServer({ name: 'notes', version: '1.0.0' }, { capabilities: { resources: { subscribe: true } } });
      for (const uri of [MODERN_STAYS, MODERN_LEAVES]) server.registerResource(uri, uri, {}, async () => ({ contents: [{ uri, text: uri }] }));
      return server;
    },
    { legacy: 'reject' },
  );
  const served = await serveHandler(handler, {
    label: 'notes',
    port,
    onMessage: ({ method, params }) => {
      if (method !== 'subscriptions/listen') return;
      const named = (params?.notifications as { resourceSubscriptions?: string[] } | undefined)?.resourceSubscriptions ?? [];
      listens.push([...named].sort());
    },
  });
  return { listens, notifyUpdated: (uri) => handler.notify.resourceUpdated(uri), stop: () => served.close() };
}

describe('a 2026-07-28 upstream resource unsubscribed while the upstream is down', () => {
  /**
   * A gateway in front of a 2026 upstream, and a client subscribed to both resources; the
   * upstream's change stream names both before `body` runs. Everything is stopped afterwards.
   */
  async function withSubscribedClient(
    healthCheck: Record<string, number>,
    body: (parts: { gateway: RunningGateway; upstream: () => ModernUpstream; restart: () => Promise<ModernUpstream>; stopUpstream: () => Promise<void>; client: Client; updates: string[] }) => Promise<void>,
  ): Promise<void> {
    const port = await freePort();
    let upstream: ModernUpstream | undefined = await startModernUpstream(port);
    let gateway: RunningGateway | undefined;
    const client = new Client({ name: 'ann', version: '1.0.0' });
    let transport: StreamableHTTPClientTransport | undefined;
    try {
      gateway = await startGateway(testConfig({ notes: { url: `http://127.0.0.1:${port}/mcp` } }, { healthCheck }));
      transport = new StreamableHTTPClientTransport(new URL(gateway.url));
      await client.connect(transport);
      const updates: string[] = [];
      client.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
      await client.subscribeResource({ uri: MODERN_LEAVES });
      await client.subscribeResource({ uri: MODERN_STAYS });
      const first = upstream;
      await waitFor(() => first.listens.some((named) => named.length === 2), 10_000, 'a change stream for both resources');
      await body({
        gateway,
        client,
        updates,
        upstream: () => upstream!,
        stopUpstream: async () => {
          const stopping = upstream;
          upstream = undefined;
          await stopping?.stop();
        },
        restart: async () => (upstream = await startModernUpstream(port)),
      });
    } finally {
      await transport?.terminateSession().catch(() => {});
      await client.close();
      await gateway?.stop();
      await upstream?.stop();
    }
  }

  const stateOf = (gateway: RunningGateway) => gateway.conflux.upstreams.statuses().find((s) => s.name === 'notes')?.state;

  /** After the upstream is back: its change stream names what is still held, and an update of it reaches the client. */
  async function listensOnlyFor(upstream: ModernUpstream, updates: string[]): Promise<void> {
    await waitFor(() => upstream.listens.length > 0, 30_000, 'the upstream to be asked for a change stream again');
    upstream.notifyUpdated(MODERN_STAYS);
    await waitFor(() => updates.includes(MODERN_STAYS), 10_000, 'the update of the resource still held');
    expect(upstream.listens.at(-1)).toEqual([MODERN_STAYS]);
    expect(upstream.listens.filter((named) => named.includes(MODERN_LEAVES))).toEqual([]);
  }

  it('is left out of the change stream opened when the connection comes back', async () => {
    // Pinged often, so that the stopped upstream is known to be down before the unsubscribe.
    await withSubscribedClient({ intervalSeconds: 0.2, timeoutSeconds: 1, failureThreshold: 1 }, async ({ gateway, client, updates, stopUpstream, restart }) => {
      await stopUpstream();
      await waitFor(() => stateOf(gateway) !== 'ready', 30_000, 'the gateway to find the upstream down');
      // The gateway answers the client; the upstream, stopped, hears nothing of it.
      await client.unsubscribeResource({ uri: MODERN_LEAVES });
      const upstream = await restart();
      await waitFor(() => stateOf(gateway) === 'ready', 30_000, 'the connection to come back');
      await listensOnlyFor(upstream, updates);
    });
  }, 90_000);

  it('is left out of the change stream reopened when the connection stayed up but its stream could not be replaced', async () => {
    // Never pinged: the connection stays ready while its change stream is gone.
    await withSubscribedClient({ intervalSeconds: 0 }, async ({ gateway, client, updates, stopUpstream, restart }) => {
      await stopUpstream();
      expect(stateOf(gateway)).toBe('ready');
      await client.unsubscribeResource({ uri: MODERN_LEAVES });
      await listensOnlyFor(await restart(), updates);
    });
  }, 90_000);
});

import { createServer, type Server } from 'node:http';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { sdkSessions, type SdkSessions } from '../fixtures/http-servers.js';
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

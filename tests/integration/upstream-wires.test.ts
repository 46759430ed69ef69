import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOOL_COUNT } from '../fixtures/demo-tools.js';
import { startSseUpstream, startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { connectClient, startGateway, stdioFixture, testConfig, textOf, type RunningGateway } from '../helpers/gateway.js';

describe('upstream wires and faults', () => {
  let sse: RunningUpstream;
  let streamable: RunningUpstream;
  let hanging: Server;
  let hangingUrl: string;
  let gateway: RunningGateway;
  let startedIn: number;

  beforeAll(async () => {
    sse = await startSseUpstream('legacy');
    streamable = await startStreamableUpstream('modern');
    // accepts connections and never answers
    hanging = createServer(() => {});
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/mcp`;
    const started = Date.now();
    gateway = await startGateway(
      testConfig({
        explicit: { transport: 'sse', url: sse.url },
        fallback: { transport: 'streamable-http', url: sse.url },
        modern: { url: streamable.url },
        hangs: { url: hangingUrl, connectTimeout: 1.5, required: true },
        missing: { command: 'conflux-no-such-command-xyz' },
        refused: { url: 'http://127.0.0.1:1/mcp' },
        noisy: stdioFixture('noisy', { env: { GARBAGE_FIRST: '1' } }),
      }),
    );
    startedIn = Date.now() - started;
  });

  afterAll(async () => {
    await gateway?.stop();
    await sse?.close();
    await streamable?.close();
    hanging?.closeAllConnections();
    await new Promise((resolve) => hanging?.close(resolve));
  });

  const status = (name: string) => gateway.conflux.upstreams.get(name)!.status();

  it('speaks legacy SSE when asked, and falls back to it from Streamable HTTP', async () => {
    expect(status('explicit')).toMatchObject({ state: 'ready', wire: 'sse', toolCount: DEMO_TOOL_COUNT });
    expect(status('fallback')).toMatchObject({ state: 'ready', transport: 'streamable-http', wire: 'sse', toolCount: DEMO_TOOL_COUNT });
    expect(status('modern')).toMatchObject({ state: 'ready', wire: 'streamable-http' });
    const { client, close } = await connectClient(gateway.url);
    expect(textOf(await client.callTool({ name: 'fallback__echo', arguments: { text: 'old' } }))).toBe('legacy: old');
    expect(textOf(await client.callTool({ name: 'modern__echo', arguments: { text: 'new' } }))).toBe('modern: new');
    await close();
  });

  it('marks a hanging upstream down after its timeout without holding up the others', () => {
    expect(status('hangs')).toMatchObject({ state: 'down', lastError: `no answer within 1.5s at ${hangingUrl}` });
    expect(startedIn).toBeLessThan(10_000);
  });

  it('is not ready while a required upstream is down', async () => {
    const response = await fetch(gateway.url.replace(/\/mcp$/, '/ready'));
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ ready: false, waiting: ['hangs'] });
  });

  it('explains a command that does not exist and a refused connection', () => {
    // retrying cannot find a missing command: no retry until the config changes or an admin restarts it
    expect(status('missing')).toMatchObject({ state: 'misconfigured', lastError: 'cannot start "conflux-no-such-command-xyz": command not found', nextRetryAt: undefined });
    expect(status('refused').state).toBe('down');
    expect(status('refused').lastError).toMatch(/connection refused|ECONNREFUSED|fetch failed/);
    expect(status('refused').nextRetryAt).toBeDefined();
  });

  it('survives an upstream that writes garbage to stdout', async () => {
    expect(status('noisy').state).toBe('ready');
    const { client, close } = await connectClient(gateway.url);
    expect(textOf(await client.callTool({ name: 'noisy__echo', arguments: { text: 'ok' } }))).toBe('noisy: ok');
    await close();
  });

  it('lists only the tools of reachable upstreams', async () => {
    const { client, close } = await connectClient(gateway.url);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.filter((n) => n.endsWith('__echo') && !n.startsWith('broadcast__')).sort()).toEqual(['explicit__echo', 'fallback__echo', 'modern__echo', 'noisy__echo']);
    await close();
  });
});

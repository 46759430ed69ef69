import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryEraVerdicts } from '../../src/upstream/era-verdicts.js';
import { isInputRequired, UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { GATEWAY_NAME } from '../../src/version.js';
import { directDeps } from '../helpers/upstream-deps.js';
import { startModernOnlyServer, type ModernOnlyServer } from '../fixtures/modern-only-server.js';
import { connectClient, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/**
 * A server that offers only a protocol revision from the future: `server/discover` names
 * 2099-01-01 alone, and `initialize` is refused with the same list (as the SDK's strict
 * 2026 entry refuses it). It counts every request, so a test can tell whether it was retried.
 */
async function startFutureOnlyServer(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const message = JSON.parse(body || '{}') as { id?: number | string; method?: string };
      const json = (status: number, payload: Record<string, unknown>) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id ?? null, ...payload }));
      if (message.method === 'server/discover') {
        return json(200, { result: { resultType: 'complete', supportedVersions: ['2099-01-01'], capabilities: { tools: {} }, ttlMs: 0, cacheScope: 'private' } });
      }
      return json(400, { error: { code: -32022, message: 'Unsupported protocol version', data: { supported: ['2099-01-01'], requested: '2025-11-25' } } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    requests: () => requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('upstreams of both protocol eras behind one gateway', () => {
  let modern: ModernOnlyServer;
  let future: Awaited<ReturnType<typeof startFutureOnlyServer>>;
  let gateway: RunningGateway;

  beforeAll(async () => {
    modern = await startModernOnlyServer({ controls: true });
    future = await startFutureOnlyServer();
    gateway = await startGateway(
      testConfig(
        { modern: { url: modern.url }, legacy: stdioFixture('legacy'), future: { url: future.url } },
        // No pings: on 2026-07-28 a ping is a `server/discover`, and the test counts those.
        { healthCheck: { intervalSeconds: 0 } },
      ),
    );
  });

  afterAll(async () => {
    try {
      await gateway?.stop();
    } finally {
      await Promise.all([modern?.stop(), future?.close()]);
    }
  });

  const status = (name: string) => gateway.conflux.upstreams.get(name)!.status();

  it('connects to both, and says which era each speaks', () => {
    expect(status('modern')).toMatchObject({ state: 'ready', wire: 'streamable-http', protocol: { era: 'modern', version: '2026-07-28' } });
    expect(status('legacy')).toMatchObject({ state: 'ready', wire: 'stdio', protocol: { era: 'legacy', version: '2025-11-25' } });
    const upstream = gateway.conflux.upstreams.get('modern')!;
    expect(upstream.prompts.map((p) => p.name)).toEqual(['greet']);
    expect(upstream.resources.map((r) => r.uri)).toEqual(['modern://readme']);
  });

  it('lists and calls the tools of both through the gateway', async () => {
    const { client, close } = await connectClient(gateway.url);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(['modern__echo', 'modern__ask', 'modern__add_tool', 'modern__touch', 'legacy__echo']));
      expect(textOf(await client.callTool({ name: 'modern__echo', arguments: { text: 'to 2026' } }))).toBe('to 2026');
      expect(textOf(await client.callTool({ name: 'legacy__echo', arguments: { text: 'to 2025' } }))).toBe('legacy: to 2025');
    } finally {
      await close();
    }
  });

  it('reconnects to the 2026 upstream with the remembered verdict, without probing again', async () => {
    const probes = modern.discoverCount();
    const lists = modern.count('tools/list');
    expect(probes).toBe(1);
    await gateway.conflux.upstreams.restart('modern');
    await waitFor(() => gateway.conflux.upstreams.get('modern')?.state === 'ready', 10_000, 'modern ready again');
    expect(modern.count('tools/list')).toBe(lists + 1); // it did connect again
    expect(modern.discoverCount()).toBe(probes);
    expect(status('modern').protocol).toEqual({ era: 'modern', version: '2026-07-28' });
  });

  it('hears a tool list change of the 2026 upstream on its subscriptions/listen stream', async () => {
    const { client, nextToolListChange, close } = await connectClient(gateway.url);
    try {
      const changed = nextToolListChange();
      expect(textOf(await client.callTool({ name: 'modern__add_tool', arguments: { name: 'fresh' } }))).toBe('added fresh');
      await changed;
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('modern__fresh');
      expect(textOf(await client.callTool({ name: 'modern__fresh', arguments: {} }))).toBe('fresh');
    } finally {
      await close();
    }
  });

  it('subscribes to a resource of the 2026 upstream on its listen stream, and relays the update', async () => {
    const { client, close } = await connectClient(gateway.url);
    try {
      const updated: string[] = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
      const listens = modern.count('subscriptions/listen');
      await client.subscribeResource({ uri: 'modern://readme' });
      const listen = modern.received().filter((m) => m.method === 'subscriptions/listen');
      expect(listen.length).toBe(listens + 1);
      expect(listen.at(-1)?.params?.notifications).toMatchObject({ toolsListChanged: true, resourceSubscriptions: ['modern://readme'] });
      expect(textOf(await client.callTool({ name: 'modern__touch', arguments: {} }))).toBe('touched');
      await waitFor(() => updated.length > 0, 10_000, 'notifications/resources/updated');
      expect(updated).toEqual(['modern://readme']);
      await client.unsubscribeResource({ uri: 'modern://readme' });
      expect(modern.received().filter((m) => m.method === 'subscriptions/listen').at(-1)?.params?.notifications).not.toHaveProperty('resourceSubscriptions');
    } finally {
      await close();
    }
  });

  it('leaves a server with no protocol version in common misconfigured, naming the versions, without retrying', async () => {
    expect(status('future')).toMatchObject({
      state: 'misconfigured',
      nextRetryAt: undefined,
      lastError: 'no protocol version in common: the server offers 2099-01-01; Conflux speaks 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05, 2024-10-07',
    });
    const attempts = future.requests();
    // The probe and the refused initialize; after that nothing, though retries (100 ms apart here) would have come by now.
    expect(attempts).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(future.requests()).toBe(attempts);
    expect(status('future').state).toBe('misconfigured');
  });

  it('does not pass the reserved _meta keys a client sends on to the upstream', async () => {
    const { client, close } = await connectClient(gateway.url);
    try {
      const result = await client.callTool({
        name: 'modern__echo',
        arguments: { text: 'with meta' },
        _meta: { 'io.modelcontextprotocol/clientInfo': { name: 'intruder', version: '6.6.6' }, 'io.modelcontextprotocol/custom': 'x', trace: 'keep-me' },
      });
      expect(textOf(result)).toBe('with meta');
    } finally {
      await close();
    }
    const call = modern.received().find((m) => m.method === 'tools/call' && (m.params?.arguments as { text?: string } | undefined)?.text === 'with meta');
    const meta = call?.params?._meta as Record<string, unknown>;
    expect(meta.trace).toBe('keep-me');
    expect(meta['io.modelcontextprotocol/custom']).toBeUndefined();
    expect(meta['io.modelcontextprotocol/clientInfo']).toMatchObject({ name: GATEWAY_NAME });
    expect(meta['io.modelcontextprotocol/protocolVersion']).toBe('2026-07-28');
  });
});

describe('a 2026 upstream connection', () => {
  let modern: ModernOnlyServer;
  const open: UpstreamConnection[] = [];

  beforeAll(async () => {
    modern = await startModernOnlyServer({ controls: true, toolsTtlMs: 60_000 });
  });

  afterAll(async () => {
    try {
      await Promise.all(open.map((c) => c.stop()));
    } finally {
      await modern?.stop();
    }
  });

  async function connect(name: string): Promise<UpstreamConnection> {
    const connection = new UpstreamConnection(name, testConfig({ [name]: { url: modern.url } }).servers[name]!, directDeps());
    open.push(connection);
    connection.start();
    await waitFor(() => connection.state === 'ready', 10_000, `${name} ready`);
    return connection;
  }

  it('hands back input_required as it came, and passes the retry on unchanged', async () => {
    const connection = await connect('asking');
    const first = await connection.request('tools/call', { name: 'ask', arguments: {} });
    expect(isInputRequired(first)).toBe(true);
    expect(first).toMatchObject({ resultType: 'input_required', requestState: 'asked-once', inputRequests: { answer: { method: 'elicitation/create' } } });
    const inputResponses = { answer: { action: 'accept', content: { answer: '42' } } };
    const second = await connection.request('tools/call', { name: 'ask', arguments: {}, inputResponses, requestState: 'asked-once' });
    expect(isInputRequired(second)).toBe(false);
    expect(textOf(second)).toBe('{"answer":"42"} (state: asked-once)');
    const retry = modern.received().filter((m) => m.method === 'tools/call' && (m.params?.name as string) === 'ask').at(-1)!;
    expect(retry.params).toMatchObject({ inputResponses, requestState: 'asked-once' });
    // One hop's identity does not travel: the upstream's serverInfo stays out of the result.
    expect(JSON.stringify(second)).not.toContain('io.modelcontextprotocol/');
  });

  it('keeps a list within its ttlMs when the listen stream is reopened, and refetches it after a list change', async () => {
    const connection = await connect('cached');
    const tools = modern.count('tools/list');
    const prompts = modern.count('prompts/list');
    const listens = modern.count('subscriptions/listen');
    modern.dropListenStreams();
    await waitFor(() => modern.count('subscriptions/listen') > listens && modern.count('prompts/list') > prompts, 10_000, 'the stream reopened and the lists refreshed');
    // prompts/list carries no ttlMs and is fetched again; tools/list is still fresh
    expect(modern.count('tools/list')).toBe(tools);
    await connection.request('tools/call', { name: 'add_tool', arguments: { name: 'cached_tool' } });
    await waitFor(() => connection.tools.some((t) => t.name === 'cached_tool'), 10_000, 'the new tool');
    expect(modern.count('tools/list')).toBeGreaterThan(tools);
  });
});

/**
 * A bare stdio server that answers the 2025 handshake and `tools/list`, and on
 * `server/discover` either exits (as servers that die on any request before `initialize` do)
 * or writes a line that is not JSON-RPC. Every method it receives is appended to a log file,
 * one line per start marked `start`.
 */
const BARE = `
const [log, onDiscover] = process.argv.slice(1);
const fs = require('node:fs');
fs.appendFileSync(log, 'start\\n');
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  fs.appendFileSync(log, m.method + '\\n');
  if (m.method === 'server/discover') {
    if (onDiscover === 'exit') process.exit(0);
    return void process.stdout.write('<html>what is this</html>\\n');
  }
  if (m.method === 'initialize') return send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'bare', version: '1' } } });
  if (m.method === 'tools/list') return send({ id: m.id, result: { tools: [{ name: 'only', inputSchema: { type: 'object' } }] } });
}).on('close', () => process.exit(0));
`;

describe('a 2025 stdio server that does not survive the probe', () => {
  let dir: string;
  const open: UpstreamConnection[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-negotiation-'));
  });

  afterAll(async () => {
    try {
      await Promise.all(open.map((c) => c.stop()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  async function bare(name: string, onDiscover: 'exit' | 'garbage') {
    const log = join(dir, `${name}.log`);
    const verdicts = new InMemoryEraVerdicts();
    const config = testConfig({ [name]: { command: process.execPath, args: ['-e', BARE, log, onDiscover], timeout: 5 } }).servers[name]!;
    const connection = new UpstreamConnection(name, config, directDeps({ verdicts }));
    open.push(connection);
    connection.start();
    await waitFor(() => connection.state === 'ready', 15_000, `${name} ready`);
    const lines = async () => (await readFile(log, 'utf8')).trim().split('\n');
    return { connection, verdicts, lines };
  }

  it('connects as legacy on a fresh child when the first one exits on server/discover', async () => {
    const { connection, verdicts, lines } = await bare('exits', 'exit');
    expect(connection.status().protocol).toEqual({ era: 'legacy', version: '2025-11-25' });
    expect(connection.tools.map((t) => t.name)).toEqual(['only']);
    // One child died of the probe, the second went straight to initialize.
    expect(await lines()).toEqual(['start', 'server/discover', 'start', 'initialize', 'notifications/initialized', 'tools/list']);
    expect(verdicts.get('exits')?.verdict).toEqual({ kind: 'legacy' });
  });

  it('connects as legacy on the same child when it answers server/discover with garbage', async () => {
    const { connection, lines } = await bare('garbled', 'garbage');
    expect(connection.status().protocol).toEqual({ era: 'legacy', version: '2025-11-25' });
    expect(await lines()).toEqual(['start', 'server/discover', 'initialize', 'notifications/initialized', 'tools/list']);
  });
});

import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shortHash } from '../../src/catalog/naming.js';
import { DEMO_TOOL_COUNT } from '../fixtures/demo-tools.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { scaled } from '../helpers/load-scale.js';
import { connectClient, isAlive, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

describe('gateway over real upstreams', () => {
  let http: RunningUpstream;
  let gateway: RunningGateway;

  beforeAll(async () => {
    http = await startStreamableUpstream('web');
    gateway = await startGateway(
      testConfig({
        local: stdioFixture('local', { tags: ['demo'] }),
        web: { transport: 'streamable-http', url: http.url, timeout: 1 },
        plain: stdioFixture('plain', { prefix: '' }),
        plain2: stdioFixture('plain2', { prefix: '' }),
      }),
    );
  });

  afterAll(async () => {
    await gateway?.stop();
    await http?.close();
  });

  it('lists the namespaced tools of every upstream, schemas intact', async () => {
    const { client, close } = await connectClient(gateway.url);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const server of ['local', 'web']) {
      for (const tool of ['echo', 'add', 'sleep', 'pid', 'fail']) expect(names).toContain(`${server}__${tool}`);
    }
    const add = tools.find((t) => t.name === 'web__add')!;
    expect(add.title).toBe('Add two numbers');
    expect(add.annotations).toEqual({ readOnlyHint: true });
    expect(add.inputSchema).toMatchObject({ type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } });
    expect(add.outputSchema).toMatchObject({ properties: { sum: { type: 'number' } } });
    for (const name of names) expect(name).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
    await close();
  });

  it('answers a plain tools/list from the cached serialisation, identical to the full path', async () => {
    const { client, close } = await connectClient(gateway.url);
    const viaSdk = await client.listTools();
    const sessionId = (client.transport as unknown as { sessionId: string }).sessionId;
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'list-1', method: 'tools/list' }),
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const data = /^data: (.*)$/m.exec(await response.text())![1]!;
    expect(JSON.parse(data)).toEqual({ jsonrpc: '2.0', id: 'list-1', result: { tools: viaSdk.tools } });
    await close();
  });

  it('routes calls to each upstream and returns results unchanged', async () => {
    const { client, close } = await connectClient(gateway.url);
    expect(textOf(await client.callTool({ name: 'local__echo', arguments: { text: 'hi' } }))).toBe('local: hi');
    expect(textOf(await client.callTool({ name: 'web__echo', arguments: { text: 'hi' } }))).toBe('web: hi');
    const sum = await client.callTool({ name: 'web__add', arguments: { a: 2, b: 3 } });
    expect(sum.structuredContent).toEqual({ sum: 5 });
    const failed = await client.callTool({ name: 'local__fail', arguments: {} });
    expect(failed).toMatchObject({ isError: true, content: [{ type: 'text', text: 'local failed on purpose' }] });
    await close();
  });

  it('resolves a collision between two servers without a prefix', async () => {
    const { client, close } = await connectClient(gateway.url);
    const names = (await client.listTools()).tools.map((t) => t.name);
    const suffixed = `echo_${shortHash('plain2\0echo')}`;
    expect(names).toContain('echo');
    expect(names).toContain(suffixed);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'x' } }))).toBe('plain: x');
    expect(textOf(await client.callTool({ name: suffixed, arguments: { text: 'x' } }))).toBe('plain2: x');
    await close();
  });

  it('answers an unknown tool with a JSON-RPC error naming it', async () => {
    const { client, close } = await connectClient(gateway.url);
    const error = await client.callTool({ name: 'nope__missing', arguments: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(-32602);
    expect((error as McpError).message).toContain('Unknown tool: "nope__missing"');
    await close();
  });

  it('turns an upstream timeout into a tool error naming the upstream, within the timeout', async () => {
    const { client, close } = await connectClient(gateway.url);
    const result = await client.callTool({ name: 'web__sleep', arguments: { ms: 5000 } });
    // The gateway's timeout answered, not the upstream's late answer ("web slept 5000").
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('upstream "web" did not answer tools/call within 1s');
    // the gateway keeps serving
    expect(textOf(await client.callTool({ name: 'local__echo', arguments: { text: 'still here' } }))).toBe('local: still here');
    await close();
  });

  it('reports upstream state and tool counts on /servers and /health', async () => {
    const base = gateway.url.replace(/\/mcp$/, '');
    const servers = (await (await fetch(`${base}/servers`)).json()) as { servers: { name: string; state: string; toolCount: number; transport: string; tags: string[] }[] };
    const web = servers.servers.find((s) => s.name === 'web')!;
    expect(web).toMatchObject({ state: 'ready', transport: 'streamable-http', toolCount: DEMO_TOOL_COUNT });
    expect(servers.servers.find((s) => s.name === 'local')).toMatchObject({ transport: 'stdio', tags: ['demo'] });
    const health = (await (await fetch(`${base}/health`)).json()) as { status: string; servers: Record<string, { state: string }> };
    expect(health.status).toBe('ok');
    expect(health.servers.web!.state).toBe('ready');
  });
});

describe('changing the set of upstreams', () => {
  it('reports a crashed upstream by name and cause, then reconnects to it', async () => {
    // a slow first retry leaves time to see the upstream down, slower still on a busy machine
    const gateway = await startGateway(testConfig({ local: stdioFixture('local') }, { reconnect: { initialDelayMs: scaled(1500), maxDelayMs: scaled(3000) } }));
    try {
      const { client, close } = await connectClient(gateway.url);
      const pid = Number(textOf(await client.callTool({ name: 'local__pid', arguments: {} })));
      await client.callTool({ name: 'local__crash', arguments: {} });
      await waitFor(() => !isAlive(pid), 5000, 'the upstream to exit');
      await waitFor(() => gateway.conflux.upstreams.get('local')!.state !== 'ready', 5000, 'the gateway to notice');
      const down = await client.callTool({ name: 'local__echo', arguments: { text: 'x' } });
      expect(down.isError).toBe(true);
      expect(textOf(down)).toMatch(/^upstream "local" is unavailable: process exited with code 3/);
      // its tools stay listed while it is down
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('local__echo');
      await waitFor(() => gateway.conflux.upstreams.get('local')!.state === 'ready', 10_000, 'the reconnect');
      expect(textOf(await client.callTool({ name: 'local__echo', arguments: { text: 'back' } }))).toBe('local: back');
      const newPid = Number(textOf(await client.callTool({ name: 'local__pid', arguments: {} })));
      expect(newPid).not.toBe(pid);
      await close();
    } finally {
      await gateway.stop();
    }
  });

  it('drops a removed upstream: its tools disappear, sessions hear list_changed, its process ends', async () => {
    const servers = { one: stdioFixture('one'), two: stdioFixture('two') };
    const gateway = await startGateway(testConfig(servers));
    try {
      const session = await connectClient(gateway.url);
      expect((await session.client.listTools()).tools.map((t) => t.name)).toContain('two__echo');
      const pid = gateway.conflux.upstreams.get('two')!.status().pid!;
      const onePid = gateway.conflux.upstreams.get('one')!.status().pid!;
      expect(isAlive(pid)).toBe(true);

      const changed = session.nextToolListChange();
      await gateway.conflux.registry.setConfigServers({ one: gateway.conflux.config.servers.one! });
      await changed;
      const names = (await session.client.listTools()).tools.map((t) => t.name);
      expect(names.some((n) => n.startsWith('two__'))).toBe(false);
      expect(names).toContain('one__echo');
      expect(isAlive(pid)).toBe(false);
      // the untouched upstream kept its process
      expect(gateway.conflux.upstreams.get('one')!.status().pid).toBe(onePid);
      await session.close();
    } finally {
      await gateway.stop();
    }
  });

  it('leaves no child process behind when stopped', async () => {
    const gateway = await startGateway(testConfig({ a: stdioFixture('a'), b: stdioFixture('b') }));
    try {
      const pids = gateway.conflux.upstreams.statuses().map((s) => s.pid!);
      expect(pids.every(isAlive)).toBe(true);
      await gateway.stop();
      expect(pids.some(isAlive)).toBe(false);
    } finally {
      await gateway.stop();
    }
  });
});

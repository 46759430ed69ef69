import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { serve, type ServerType } from '@hono/node-server';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FIXTURE_V2 } from '../conformance/conformance-2026-runner.js';
import { startFixture, type RunningFixture } from '../conformance/conformance-runner.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';

/**
 * Clients on the SDK's 2.x client speaking the 2026-07-28 revision to the gateway: pinned to it,
 * and negotiating it (`auto`). Every request is served on its own, with no session, for the
 * caller that made it.
 */
type Mode = 'pinned' | 'auto';

async function modernClient(url: string, mode: Mode, headers?: Record<string, string>, elicitation = false): Promise<{ client: Client; close(): Promise<void> }> {
  const client = new Client(
    { name: `modern-${mode}`, version: '1.0.0' },
    { versionNegotiation: { mode: mode === 'pinned' ? { pin: '2026-07-28' } : 'auto' }, capabilities: elicitation ? { elicitation: {} } : {} },
  );
  if (elicitation) client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name: 'Ada' } }));
  const transport = new StreamableHTTPClientTransport(new URL(url), headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return { client, close: () => client.close() };
}

/** A raw 2026-07-28 request, as the SDK client sends it (envelope and standard headers). */
function rawModern(
  url: string,
  message: { id: number; method: string; params?: Record<string, unknown> },
  headers: Record<string, string> = {},
  capabilities: Record<string, unknown> = {},
): Promise<Response> {
  const envelope = modernEnvelope(capabilities);
  const params: Record<string, unknown> = { ...message.params, _meta: { ...envelope, ...(message.params?._meta as object | undefined) } };
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': message.method,
      ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
      ...headers,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: message.id, method: message.method, params }),
  });
}

describe.each<Mode>(['pinned', 'auto'])('a 2026-07-28 client (%s) against a gateway over a stdio upstream', (mode) => {
  let gateway: RunningGateway;
  let modern: Awaited<ReturnType<typeof modernClient>>;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
    modern = await modernClient(gateway.url, mode);
  });
  afterAll(async () => {
    await modern?.close();
    await gateway?.stop();
  });

  it('negotiates 2026-07-28 and reads what server/discover says', () => {
    expect(modern.client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
    expect(modern.client.getProtocolEra()).toBe('modern');
    const discovered = modern.client.getDiscoverResult() as unknown as Record<string, unknown>;
    expect(discovered).toMatchObject({ supportedVersions: ['2026-07-28'], ttlMs: 0, cacheScope: 'private' });
    expect(modern.client.getServerCapabilities()).toMatchObject({ tools: { listChanged: true }, prompts: { listChanged: true }, resources: { listChanged: true, subscribe: false } });
    expect(modern.client.getServerVersion()?.name).toBe('conflux');
    expect(modern.client.getInstructions()).toContain('Conflux gateway');
  });

  it('lists the namespaced tools, privately and uncached', async () => {
    const { tools } = await modern.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__add', 'alpha__pid']));
    const answer = await rawModern(gateway.url, { id: 7, method: 'tools/list' });
    const body = (await answer.json()) as { id: number; result: Record<string, unknown> };
    expect(body).toMatchObject({ id: 7, result: { resultType: 'complete', ttlMs: 0, cacheScope: 'private' } });
    expect(answer.headers.get('mcp-session-id')).toBeNull();
  });

  it('calls a tool, structured content intact', async () => {
    const echoed = await modern.client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } });
    expect(textOf(echoed)).toBe('alpha: hi');
    const added = await modern.client.callTool({ name: 'alpha__add', arguments: { a: 2, b: 3 } });
    expect(added.structuredContent).toEqual({ sum: 5 });
  });

  it('reads a resource and gets a prompt through their exposed names', async () => {
    const read = await modern.client.readResource({ uri: 'demo://alpha/static' });
    expect(read.contents).toEqual([{ uri: 'demo://alpha/static', mimeType: 'text/plain', text: 'static text of alpha' }]);
    const prompt = await modern.client.getPrompt({ name: 'alpha__greet', arguments: { name: 'Ada' } });
    expect(prompt.messages[0]?.content).toMatchObject({ type: 'text', text: 'alpha says hello to Ada' });
  });

  it('answers an unknown resource with -32602 and the URI in data', async () => {
    const error = await modern.client.readResource({ uri: 'nowhere://x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ code: -32602, data: { uri: 'nowhere://x' } });
  });

  it('hears tools/list_changed on a listen stream when an upstream list changes', async () => {
    const heard: string[] = [];
    modern.client.setNotificationHandler('notifications/tools/list_changed', () => void heard.push('tools'));
    const subscription = await modern.client.listen({ toolsListChanged: true, resourceSubscriptions: ['demo://alpha/static'] });
    try {
      // Resource updates are not offered on this revision; list changes are.
      expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
      const servers = gateway.conflux.config.servers;
      const extra = testConfig({ [`extra_${mode}`]: stdioFixture(`extra_${mode}`) }).servers;
      await gateway.conflux.registry.setConfigServers({ ...servers, ...extra });
      await waitFor(() => heard.length > 0, 30_000, 'tools/list_changed');
      const { tools } = await modern.client.listTools();
      expect(tools.map((t) => t.name)).toContain(`extra_${mode}__echo`);
    } finally {
      await subscription.close();
    }
    expect(await subscription.closed).toBe('local');
  });
});

describe('2026-07-28 requests the SDK refuses before any handler', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('an Mcp-Method header that contradicts the body: -32020 with the request id', async () => {
    const answer = await rawModern(gateway.url, { id: 11, method: 'tools/list' }, { 'mcp-method': 'prompts/list' });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({ id: 11, error: { code: -32020 } });
  });

  it('an Mcp-Name header that contradicts the tool called: -32020 with the request id', async () => {
    const answer = await rawModern(gateway.url, { id: 12, method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: 'x' } } }, { 'mcp-name': 'alpha__add' });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({ id: 12, error: { code: -32020 } });
  });

  it('a malformed envelope: -32602 with the request id', async () => {
    const answer = await rawModern(gateway.url, { id: 13, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/clientCapabilities': 'none' } } });
    const body = (await answer.json()) as { id: unknown; error?: { code: number } };
    expect(body).toMatchObject({ id: 13, error: { code: -32602 } });
  });

  it('params of the wrong type: -32602 naming the field, from the gateway', async () => {
    const answer = await rawModern(gateway.url, { id: 14, method: 'prompts/get', params: { name: 'alpha__greet', arguments: 7 } });
    const body = (await answer.json()) as { id: unknown; error?: { code: number; message: string } };
    expect(body).toMatchObject({ id: 14, error: { code: -32602 } });
    expect(body.error?.message).toMatch(/params\.arguments/);
  });

  it('2025 clients keep their sessions on the same route', async () => {
    const answer = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('mcp-session-id')).toMatch(/^[0-9a-f-]{36}$/);
    await answer.body?.cancel();
  });
});

describe('2026-07-28 requests authenticated and seen per caller', () => {
  let gateway: RunningGateway;
  let database: OpenedDatabase;
  const keys: Record<'a' | 'b', string> = { a: '', b: '' };

  beforeAll(async () => {
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha'), beta: stdioFixture('beta') },
        {
          auth: { apiKeys: true },
          access: {
            grants: [
              { group: 'team-a', servers: ['alpha'], level: 'call' },
              { group: 'team-b', servers: ['alpha', 'beta'], level: 'call' },
            ],
            toolRules: [{ group: 'team-a', server: 'alpha', deny: ['pid'] }],
          },
        },
      ),
      { database },
    );
    keys.a = (await gateway.conflux.apiKeys!.create({ name: 'principal-a', groups: ['team-a'] })).key;
    keys.b = (await gateway.conflux.apiKeys!.create({ name: 'principal-b', groups: ['team-b'] })).key;
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  it('refuses a request without credentials with 401 and serves it with them', async () => {
    const refused = await rawModern(gateway.url, { id: 1, method: 'tools/list' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    await refused.body?.cancel();
    const served = await rawModern(gateway.url, { id: 2, method: 'tools/list' }, { 'x-api-key': keys.a });
    expect(served.status).toBe(200);
    expect(await served.json()).toMatchObject({ id: 2, result: { resultType: 'complete' } });
    await expect(modernClient(gateway.url, 'pinned')).rejects.toThrow();
  });

  it("principal A's calls never see or reach what only B may use", async () => {
    const a = await modernClient(gateway.url, 'pinned', { 'x-api-key': keys.a });
    const b = await modernClient(gateway.url, 'pinned', { 'x-api-key': keys.b });
    try {
      const seenByB = (await b.client.listTools()).tools.map((t) => t.name);
      expect(seenByB).toEqual(expect.arrayContaining(['alpha__pid', 'beta__echo', 'beta__pid']));
      const seenByA = (await a.client.listTools()).tools.map((t) => t.name);
      expect(seenByA).toContain('alpha__echo');
      for (const hidden of ['alpha__pid', 'beta__echo', 'beta__pid']) expect(seenByA).not.toContain(hidden);
      expect(a.client.getInstructions() ?? '').not.toContain('## beta');

      for (const hidden of ['alpha__pid', 'beta__echo']) {
        const error = await a.client.callTool({ name: hidden, arguments: { text: 'x' } }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: -32602, message: expect.stringContaining(`Unknown tool: "${hidden}"`) });
        // Exactly one prefix, whatever the client adds.
        expect((error as Error).message.match(/MCP error/g)?.length ?? 0).toBeLessThanOrEqual(1);
      }
      const read = await a.client.readResource({ uri: 'demo://beta/static' }).catch((e: unknown) => e);
      expect(read).toMatchObject({ code: -32602, data: { uri: 'demo://beta/static' } });
      expect(textOf(await b.client.callTool({ name: 'beta__echo', arguments: { text: 'x' } }))).toBe('beta: x');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('ends a listen stream when the API key that opened it is revoked', async () => {
    const created = await gateway.conflux.apiKeys!.create({ name: 'listener', groups: ['team-a'] });
    const { client, close } = await modernClient(gateway.url, 'pinned', { 'x-api-key': created.key });
    try {
      const subscription = await client.listen({ toolsListChanged: true });
      await gateway.conflux.apiKeys!.revoke('listener');
      expect(await subscription.closed).toBe('remote');
      const refused = await rawModern(gateway.url, { id: 3, method: 'tools/list' }, { 'x-api-key': created.key });
      expect(refused.status).toBe(401);
      await refused.body?.cancel();
    } finally {
      await close();
    }
  });
});

describe('listen streams per caller', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { limits: { maxSessionsPerPrincipal: 1 } }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('are bounded like sessions, and a closed one gives its place back', async () => {
    const { client, close } = await modernClient(gateway.url, 'pinned');
    try {
      const first = await client.listen({ toolsListChanged: true });
      const refused = await client.listen({ toolsListChanged: true }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(Error);
      expect(String((refused as Error).message)).toMatch(/Too many listen streams/);
      // Requests other than listen are not counted.
      expect((await client.listTools()).tools.length).toBeGreaterThan(0);
      await first.close();
      await waitFor(async () => {
        const again = await client.listen({ toolsListChanged: true }).catch(() => undefined);
        if (again) await again.close();
        return again !== undefined;
      }, 10_000, 'a listen place freed');
    } finally {
      await close();
    }
  });
});

describe('input_required from a 2026-07-28 upstream, through the gateway', () => {
  let fixture: RunningFixture;
  let gateway: RunningGateway;
  const TOOL = 'test_input_required_result_elicitation';

  beforeAll(async () => {
    fixture = await startFixture(FIXTURE_V2);
    gateway = await startGateway(testConfig({ conformance: { url: fixture.url, prefix: '' } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await fixture?.stop();
  });

  it('reaches a 2026 client unchanged, and its retry reaches the upstream with the answers', async () => {
    const call = { id: 21, method: 'tools/call', params: { name: TOOL, arguments: {} } };
    const asked = (await (await rawModern(gateway.url, call, {}, { elicitation: {} })).json()) as { id: number; result: Record<string, unknown> };
    expect(asked).toMatchObject({ id: 21, result: { resultType: 'input_required', inputRequests: { user_name: { method: 'elicitation/create' } } } });
    const retry = { id: 22, method: 'tools/call', params: { ...call.params, inputResponses: { user_name: { action: 'accept', content: { name: 'Ada' } } } } };
    const answered = (await (await rawModern(gateway.url, retry, {}, { elicitation: {} })).json()) as { id: number; result: Record<string, unknown> };
    expect(answered).toMatchObject({ id: 22, result: { resultType: 'complete', content: [{ type: 'text', text: 'Hello, Ada!' }] } });
  });

  it('is answered by the SDK client of a 2026 client on its own', async () => {
    const { client, close } = await modernClient(gateway.url, 'pinned', undefined, true);
    try {
      expect(textOf(await client.callTool({ name: TOOL, arguments: {} }))).toBe('Hello, Ada!');
    } finally {
      await close();
    }
  });

  it.each([
    ['asks a 2025 client that declared elicitation, on its session', { elicitation: {} }],
    // The upstream is told the caller's capabilities, and refuses itself (-32021) what the caller
    // could not answer; a 2025 client reads that as a tool error in its own idiom (as the SDK's
    // legacy shim answers it directly), on the plain tools/call path (nothing declared) and the
    // session server's (roots declared) alike.
    ['is refused by the upstream for a 2025 client that declared nothing', {}],
    ['is refused by the upstream for a 2025 client that declared only roots', { roots: {} }],
  ])('%s', async (_how, capabilities) => {
    const declares = 'elicitation' in capabilities;
    const client = new LegacyClient({ name: 'legacy', version: '1.0.0' }, { capabilities });
    if (declares) client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Ada' } }));
    const transport = new LegacyTransport(new URL(gateway.url));
    await client.connect(transport);
    try {
      if (declares) expect(textOf(await client.callTool({ name: TOOL, arguments: {} }))).toBe('Hello, Ada!');
      else {
        const refused = await client.callTool({ name: TOOL, arguments: {} });
        expect(refused.isError).toBe(true);
        expect(textOf(refused)).toBe('This tool needs a client that supports elicitation; this client did not declare it.');
      }
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });
});

describe('structured content whose root is not an object, from a 2026-07-28 upstream', () => {
  let upstream: { url: string; close(): Promise<void> };
  let gateway: RunningGateway;

  beforeAll(async () => {
    const handler = createMcpHandler(
      () => {
        const server = new McpServer({ name: 'lists', version: '1.0.0' });
        server.registerTool('names', { description: 'Names, as an array', outputSchema: z.array(z.string()) }, async () => ({
          content: [],
          structuredContent: ['Ada', 'Grace'],
        }));
        return server;
      },
      { legacy: 'reject' },
    );
    const http: ServerType = await new Promise((resolve) => {
      const started = serve({ fetch: (request) => handler.fetch(request), hostname: '127.0.0.1', port: 0 }, () => resolve(started));
    });
    const { port } = http.address() as { port: number };
    upstream = {
      url: `http://127.0.0.1:${port}/mcp`,
      close: async () => {
        await handler.close();
        await new Promise((resolve) => http.close(resolve));
      },
    };
    gateway = await startGateway(testConfig({ lists: { url: upstream.url } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('reaches a 2026 client as it came, with a text copy', async () => {
    const { client, close } = await modernClient(gateway.url, 'pinned');
    try {
      const { tools } = await client.listTools();
      expect(tools.find((t) => t.name === 'lists__names')?.outputSchema).toMatchObject({ type: 'array' });
      const result = await client.callTool({ name: 'lists__names', arguments: {} });
      expect(result.structuredContent).toEqual(['Ada', 'Grace']);
      expect(textOf(result)).toBe('["Ada","Grace"]');
    } finally {
      await close();
    }
  });

  it.each([
    ['the plain path', {}],
    ["the session server's path", { roots: {} }],
  ])('reaches a 2025 client wrapped in an object, listed and called (%s)', async (_path, capabilities) => {
    const client = new LegacyClient({ name: 'legacy', version: '1.0.0' }, { capabilities });
    const transport = new LegacyTransport(new URL(gateway.url));
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.find((t) => t.name === 'lists__names')?.outputSchema).toMatchObject({ type: 'object', properties: { result: { type: 'array' } } });
      const result = await client.callTool({ name: 'lists__names', arguments: {} });
      expect(result.structuredContent).toEqual({ result: ['Ada', 'Grace'] });
      expect(textOf(result)).toBe('["Ada","Grace"]');
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });
});

import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer as LegacyMcpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport as LegacyServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LoggingMessageNotificationSchema, McpError, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { createMcpHandler, fromJsonSchema, McpServer, type CallToolResult } from '@modelcontextprotocol/server';
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { sdkClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';

/**
 * Upstreams on the 2026-07-28 revision (the SDK's `createMcpHandler`, sessionless) behind one
 * shared connection each: what one caller does to such a connection must not reach another
 * caller, what the upstream needs on the wire (`Mcp-Param-*` headers, the request's log level)
 * is sent, and the change stream follows the resource subscriptions.
 */

const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });
/** Typed as a plain string: the SDK's JSON Schema type has no such key. */
const X_MCP_HEADER: string = 'x-mcp-header';

/** A call the test holds inside the upstream until it releases it. */
class Gate {
  reached = 0;
  #open!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.#open = resolve));
  release(): void {
    this.#open();
  }
}

/** One message the upstream received: its method, the tool or resource it named, and what the test checks. */
interface Seen {
  path: string;
  method: string;
  name: string | undefined;
  logLevel: unknown;
  regionHeader: string | null;
}

interface ModernUpstream {
  /**
   * `/plain/mcp`: no completions, resources `res://a` and `res://b`. `/liar/mcp`: declares
   * completions but has no handler for them (the SDK answers -32601 with HTTP 404), no resources.
   */
  url(path: 'plain' | 'liar'): string;
  seen: Seen[];
  /** The filter of every `subscriptions/listen` stream open now. */
  openListens: Map<number, string[]>;
  gate: Gate;
  notifyUpdated(uri: string): void;
  stop(): Promise<void>;
}

async function startModernUpstream(): Promise<ModernUpstream> {
  const seen: Seen[] = [];
  const openListens = new Map<number, string[]>();
  let listens = 0;
  const state = { gate: new Gate() };
  const build = (completions: boolean) => () => {
    const server = new McpServer(
      { name: 'modern-upstream', version: '1.0.0' },
      { capabilities: { logging: {}, resources: { subscribe: true, listChanged: true }, ...(completions ? { completions: {} } : {}) } },
    );
    server.registerPrompt('greet', { description: 'Says hello' }, async () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'hello' } }] }));
    server.registerTool('hold', { description: 'Returns once the test releases it', inputSchema: z.object({}) }, async () => {
      const gate = state.gate;
      gate.reached++;
      await gate.opened;
      return text('released');
    });
    server.registerTool(
      'regional',
      {
        description: 'Has an argument mirrored into the Mcp-Param-Region header',
        inputSchema: fromJsonSchema<{ region?: string }>({ type: 'object', properties: { region: { type: 'string', [X_MCP_HEADER]: 'Region' } } }),
      },
      async (args) => text(`region=${args.region ?? '<none>'}`),
    );
    server.registerTool('chatty', { description: 'Logs at debug and at info about its call', inputSchema: z.object({}) }, async (_args, ctx) => {
      await ctx.mcpReq.log('debug', 'chatty debug');
      await ctx.mcpReq.log('info', 'chatty info');
      return text('chatted');
    });
    // Only on one upstream, so the gateway lists them under their own URIs.
    for (const name of completions ? [] : ['a', 'b']) {
      server.registerResource(name, `res://${name}`, {}, async () => ({ contents: [{ uri: `res://${name}`, text: name }] }));
    }
    return server;
  };
  const handlers = { plain: createMcpHandler(build(false), { legacy: 'reject' }), liar: createMcpHandler(build(true), { legacy: 'reject' }) };
  const http: ServerType = await new Promise((resolve) => {
    const started = serve(
      {
        hostname: '127.0.0.1',
        port: 0,
        // Below the gateway's cap on one Mcp-Param value, so that a header the gateway sends can
        // still be refused (HTTP 431, no JSON-RPC body), as a proxy with a small limit would.
        serverOptions: { maxHeaderSize: 2048 },
        fetch: async (request) => {
          const path = new URL(request.url).pathname.split('/')[1] as 'plain' | 'liar';
          const handler = handlers[path];
          if (!handler) return new Response('not found', { status: 404 });
          const body = request.method === 'POST' ? ((await request.clone().json().catch(() => undefined)) as { method?: string; params?: Record<string, any> } | undefined) : undefined;
          if (typeof body?.method === 'string') {
            seen.push({
              path,
              method: body.method,
              name: body.params?.name ?? body.params?.ref?.name,
              logLevel: body.params?._meta?.['io.modelcontextprotocol/logLevel'],
              regionHeader: request.headers.get('mcp-param-region'),
            });
          }
          if (body?.method !== 'subscriptions/listen') return handler.fetch(request);
          const subscriptions: string[] = body.params?.notifications?.resourceSubscriptions ?? [];
          // A stream for one resource is slow to be acknowledged: a second subscription made
          // meanwhile is answered first, as it would be by a busy server.
          if (subscriptions.length === 1) await new Promise((r) => setTimeout(r, 400));
          const response = await handler.fetch(request);
          const id = ++listens;
          openListens.set(id, [...subscriptions].sort());
          const reader = response.body!.getReader();
          const counted = new ReadableStream({
            async pull(controller) {
              const { done, value } = await reader.read();
              if (done) {
                openListens.delete(id);
                controller.close();
              } else controller.enqueue(value);
            },
            cancel(reason) {
              openListens.delete(id);
              return reader.cancel(reason);
            },
          });
          return new Response(counted, { status: response.status, headers: response.headers });
        },
      },
      () => resolve(started),
    );
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}/${path}/mcp`,
    seen,
    openListens,
    get gate() {
      return state.gate;
    },
    set gate(gate: Gate) {
      state.gate = gate;
    },
    notifyUpdated: (uri) => handlers.plain.notify.resourceUpdated(uri),
    stop: async () => {
      await handlers.plain.close();
      await handlers.liar.close();
      (http as HttpServer).closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
}

/** A 2026-07-28 request sent by hand (envelope and standard headers), naming `logLevel` when given. */
function rawModern(url: string, id: number, method: string, params: Record<string, unknown>, options: { logLevel?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const meta = modernEnvelope({}, options.logLevel ? { 'io.modelcontextprotocol/logLevel': options.logLevel } : {});
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }),
  });
}

type Message = { id?: unknown; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { code: number; message: string } };

/** The JSON-RPC messages of a response, whether it came as JSON or as an event stream. */
async function messagesOf(response: Response): Promise<Message[]> {
  const body = await response.text();
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) return [JSON.parse(body) as Message];
  const messages: Message[] = [];
  const parser = createParser({ onEvent: (event) => void (event.data.trim() && messages.push(JSON.parse(event.data) as Message)) });
  parser.feed(body);
  return messages;
}

const answerOf = (messages: Message[]) => messages.find((m) => 'result' in m || 'error' in m)!;
const logsOf = (messages: Message[]) => messages.filter((m) => m.method === 'notifications/message').map((m) => [m.params!.level, m.params!.data]);

async function legacyClient(url: string, headers?: Record<string, string>) {
  const client = new LegacyClient({ name: 'legacy', version: '1.0.0' });
  const updates: string[] = [];
  const logs: unknown[][] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push([n.params.level, n.params.data]));
  const transport = new LegacyTransport(new URL(url), headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return {
    client,
    updates,
    logs,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

describe('2026-07-28 upstreams behind a shared connection', () => {
  let upstream: ModernUpstream;
  let gateway: RunningGateway;

  beforeAll(async () => {
    upstream = await startModernUpstream();
    gateway = await startGateway(testConfig({ plain: { url: upstream.url('plain') }, liar: { url: upstream.url('liar') } }));
    for (const name of ['plain', 'liar']) expect(gateway.conflux.upstreams.get(name)?.status()).toMatchObject({ state: 'ready', protocol: { era: 'modern' } });
  }, 60_000);
  afterAll(async () => {
    upstream?.gate.release();
    await gateway?.stop();
    await upstream?.stop();
  });

  /** Runs `attack` while another client's call holds the upstream, and checks that call and the connection came through. */
  async function whileAnotherCallIsInFlight(server: 'plain' | 'liar', attack: () => Promise<void>): Promise<void> {
    const connectedAt = gateway.conflux.upstreams.get(server)!.status().connectedAt;
    upstream.gate = new Gate();
    const victim = await legacyClient(gateway.url);
    try {
      const held = victim.client.callTool({ name: `${server}__hold`, arguments: {} });
      await waitFor(() => upstream.gate.reached === 1, 10_000, 'the held call to reach the upstream');
      await attack();
      expect(gateway.conflux.upstreams.get(server)!.status()).toMatchObject({ state: 'ready', connectedAt });
      upstream.gate.release();
      expect(textOf(await held)).toBe('released');
    } finally {
      upstream.gate.release();
      await victim.close();
    }
  }

  it('refuses a completion the upstream does not offer, without sending it and without touching the connection', async () => {
    const before = upstream.seen.filter((m) => m.method === 'completion/complete').length;
    await whileAnotherCallIsInFlight('plain', async () => {
      const attacker = await legacyClient(gateway.url);
      try {
        const refused = await attacker.client.complete({ ref: { type: 'ref/prompt', name: 'plain__greet' }, argument: { name: 'x', value: 'a' } }).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(McpError);
        expect((refused as McpError).code).toBe(-32601);
      } finally {
        await attacker.close();
      }
      const modern = answerOf(await messagesOf(await rawModern(gateway.url, 1, 'completion/complete', { ref: { type: 'ref/prompt', name: 'plain__greet' }, argument: { name: 'x', value: 'a' } })));
      expect(modern.error?.code).toBe(-32601);
    });
    expect(upstream.seen.filter((m) => m.method === 'completion/complete').length).toBe(before);
  });

  it("reads an HTTP 404 carrying the upstream's JSON-RPC error as that answer, not as the end of the connection", async () => {
    await whileAnotherCallIsInFlight('liar', async () => {
      const attacker = await legacyClient(gateway.url);
      try {
        const refused = await attacker.client.complete({ ref: { type: 'ref/prompt', name: 'liar__greet' }, argument: { name: 'x', value: 'a' } }).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(McpError);
        expect((refused as McpError).code).toBe(-32601);
      } finally {
        await attacker.close();
      }
    });
    // The request did reach the upstream: the answer was its own.
    expect(upstream.seen.some((m) => m.path === 'liar' && m.method === 'completion/complete')).toBe(true);
    expect(gateway.conflux.upstreams.get('liar')!.status().breaker).toBe('closed');
  });

  it('sends the Mcp-Param headers a tool declares, for 2026 and 2025 callers alike', async () => {
    const modern = new Client({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await modern.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    const legacy = await legacyClient(gateway.url);
    try {
      await modern.listTools();
      expect(textOf(await modern.callTool({ name: 'plain__regional', arguments: { region: 'eu' } }))).toBe('region=eu');
      expect(textOf(await legacy.client.callTool({ name: 'plain__regional', arguments: { region: 'zürich ' } }))).toBe('region=zürich ');
      expect(textOf(await legacy.client.callTool({ name: 'plain__regional', arguments: {} }))).toBe('region=<none>');
    } finally {
      await modern.close();
      await legacy.close();
    }
    expect(upstream.seen.filter((m) => m.method === 'tools/call' && m.name === 'regional').map((m) => m.regionHeader)).toEqual([
      'eu',
      `=?base64?${Buffer.from('zürich ').toString('base64')}?=`,
      null,
    ]);
  });

  it('refuses a 2026 call whose Mcp-Param header is absent, malformed or disagrees with its argument, before it is served', async () => {
    const calls = () => upstream.seen.filter((m) => m.method === 'tools/call' && m.name === 'regional').length;
    const before = calls();
    const call = (id: number, args: Record<string, unknown>, headers: Record<string, string> = {}) =>
      rawModern(gateway.url, id, 'tools/call', { name: 'plain__regional', arguments: args }, { headers }).then(async (response) => ({ status: response.status, answer: answerOf(await messagesOf(response)) }));
    for (const [id, headers, message] of [
      [1, {}, 'Mcp-Param-Region header is absent'],
      [2, { 'mcp-param-region': 'us' }, 'Mcp-Param-Region header does not match the tools/call arguments'],
      [3, { 'mcp-param-region': '=?base64?not base64!?=' }, 'Mcp-Param-Region header is malformed'],
    ] as const) {
      const { status, answer } = await call(id, { region: 'eu' }, headers);
      expect(status).toBe(400);
      expect(answer).toMatchObject({ id, error: { code: -32020, message } });
    }
    expect(calls()).toBe(before);
    // Agreeing headers (plain or base64), and no header for an absent argument, are served.
    expect((await call(4, { region: 'eu' }, { 'mcp-param-region': 'eu' })).answer.result).toBeDefined();
    expect((await call(5, { region: 'eu' }, { 'mcp-param-region': `=?base64?${Buffer.from('eu').toString('base64')}?=` })).answer.result).toBeDefined();
    expect((await call(6, {})).answer.result).toBeDefined();
    expect(calls()).toBe(before + 3);
  });

  it("keeps one caller's oversized Mcp-Param value to itself: refused at the gateway, or by the upstream, without opening the breaker", async () => {
    const calls = () => upstream.seen.filter((m) => m.method === 'tools/call' && m.name === 'regional').length;
    const before = calls();
    await whileAnotherCallIsInFlight('plain', async () => {
      const attacker = await legacyClient(gateway.url);
      try {
        // Over the gateway's cap: refused before it is sent, naming the argument.
        const capped = await attacker.client.callTool({ name: 'plain__regional', arguments: { region: 'x'.repeat(5000) } }).catch((e: unknown) => e);
        expect(capped).toBeInstanceOf(McpError);
        expect((capped as McpError).code).toBe(-32602);
        expect((capped as McpError).message).toContain('the argument "region" is too long to be sent in the Mcp-Param-Region header');
        // Under the cap, over what this upstream accepts: its HTTP 431 answers this call alone, as often as it is sent.
        for (let i = 0; i < 6; i++) {
          const refused = await attacker.client.callTool({ name: 'plain__regional', arguments: { region: 'x'.repeat(3000) } }).catch((e: unknown) => e);
          expect(refused).toBeInstanceOf(McpError);
          expect((refused as McpError).code).toBe(-32600);
          expect((refused as McpError).message).toContain('upstream "plain" refused tools/call: HTTP 431');
        }
      } finally {
        await attacker.close();
      }
      // A 2026 caller's header is still held to its argument, whatever its length; then capped.
      const big = 'y'.repeat(5000);
      const mismatched = answerOf(await messagesOf(await rawModern(gateway.url, 21, 'tools/call', { name: 'plain__regional', arguments: { region: big } }, { headers: { 'mcp-param-region': 'eu' } })));
      expect(mismatched.error).toMatchObject({ code: -32020, message: 'Mcp-Param-Region header does not match the tools/call arguments' });
      const agreeing = answerOf(await messagesOf(await rawModern(gateway.url, 22, 'tools/call', { name: 'plain__regional', arguments: { region: big } }, { headers: { 'mcp-param-region': big } })));
      expect(agreeing.error).toMatchObject({ code: -32602, message: expect.stringContaining('the argument "region" is too long') });
    });
    expect(gateway.conflux.upstreams.get('plain')!.status().breaker).toBe('closed');
    expect(calls()).toBe(before);
    const other = await legacyClient(gateway.url);
    try {
      expect(textOf(await other.client.callTool({ name: 'plain__regional', arguments: { region: 'eu' } }))).toBe('region=eu');
    } finally {
      await other.close();
    }
  });

  it("relays a call's request-scoped logs at the level its caller asked for", async () => {
    const chatty = () => upstream.seen.filter((m) => m.method === 'tools/call' && m.name === 'chatty');
    const before = chatty().length;
    const call = (id: number, logLevel?: string) => rawModern(gateway.url, id, 'tools/call', { name: 'plain__chatty', arguments: {} }, logLevel ? { logLevel } : {}).then(messagesOf);

    const debug = await call(1, 'debug');
    expect(answerOf(debug).result).toMatchObject({ content: [{ text: 'chatted' }] });
    expect(logsOf(debug)).toEqual([
      ['debug', 'chatty debug'],
      ['info', 'chatty info'],
    ]);
    expect(logsOf(await call(2, 'info'))).toEqual([['info', 'chatty info']]);
    expect(logsOf(await call(3))).toEqual([]);

    // A 2025 session: at the level it set, else the default (info); on the plain path and the session server's.
    const verbose = await legacyClient(gateway.url);
    const rooted = await sdkClient(gateway.url, { roots: ['file:///tmp'] });
    const rootedLogs: unknown[][] = [];
    rooted.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void rootedLogs.push([n.params.level, n.params.data]));
    try {
      await verbose.client.setLoggingLevel('debug');
      expect(textOf(await verbose.client.callTool({ name: 'plain__chatty', arguments: {} }))).toBe('chatted');
      expect(verbose.logs).toEqual([
        ['debug', 'chatty debug'],
        ['info', 'chatty info'],
      ]);
      expect(textOf(await rooted.client.callTool({ name: 'plain__chatty', arguments: {} }))).toBe('chatted');
      expect(rootedLogs).toEqual([['info', 'chatty info']]);
    } finally {
      await verbose.close();
      await rooted.close();
    }
    expect(chatty().slice(before).map((m) => m.logLevel)).toEqual(['debug', 'info', undefined, 'debug', 'info']);
  });

  it('subscriptions made at the same time leave one change stream, with every subscribed resource', async () => {
    const s1 = await legacyClient(gateway.url);
    const s2 = await legacyClient(gateway.url);
    try {
      await Promise.all([s1.client.subscribeResource({ uri: 'res://a' }), s2.client.subscribeResource({ uri: 'res://b' })]);
      const plainStreams = () => [...upstream.openListens.values()].filter((filter) => filter.length > 0);
      await waitFor(() => plainStreams().length === 1, 5000, 'one stream with resource subscriptions');
      expect(plainStreams()).toEqual([['res://a', 'res://b']]);
      upstream.notifyUpdated('res://a');
      upstream.notifyUpdated('res://b');
      await waitFor(() => s1.updates.length > 0 && s2.updates.length > 0, 5000, 'both updates');
      expect([s1.updates, s2.updates]).toEqual([['res://a'], ['res://b']]);

      await Promise.all([s1.client.unsubscribeResource({ uri: 'res://a' }), s2.client.unsubscribeResource({ uri: 'res://b' })]);
      await waitFor(() => plainStreams().length === 0, 5000, 'no stream with resource subscriptions');
    } finally {
      await s1.close();
      await s2.close();
    }
  });
});

describe('2026-07-28 tool calls without a session', () => {
  let upstream: ModernUpstream;
  let gateway: RunningGateway;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    upstream = await startModernUpstream();
    gateway = await startGateway(
      testConfig(
        { plain: { url: upstream.url('plain') } },
        {
          limits: { maxConcurrentCallsPerSession: 2 },
          auth: { jwt: { secret: JWT_SECRET } },
          access: { grants: [{ user: 'ann@example.com', servers: ['plain'], level: 'call' }, { user: 'bob@example.com', servers: ['plain'], level: 'call' }] },
        },
      ),
    );
    tokens.ann = await hs256Token({ sub: 'u-ann', email: 'ann@example.com' }, { expiresIn: '1h' });
    tokens.bob = await hs256Token({ sub: 'u-bob', email: 'bob@example.com' }, { expiresIn: '1h' });
  }, 60_000);
  afterAll(async () => {
    upstream?.gate.release();
    await gateway?.stop();
    await upstream?.stop();
  });

  it("are held to the per-session limit of concurrent calls, per caller", async () => {
    const call = (who: string, id: number, name: string) =>
      rawModern(gateway.url, id, 'tools/call', { name, arguments: {} }, { headers: bearer(tokens[who]!) }).then(messagesOf).then(answerOf);
    upstream.gate = new Gate();
    const held = [call('ann', 1, 'plain__hold'), call('ann', 2, 'plain__hold')];
    await waitFor(() => upstream.gate.reached === 2, 10_000, "ann's two calls to reach the upstream");
    const third = await call('ann', 3, 'plain__chatty');
    expect(third.error).toMatchObject({ code: -32000, message: expect.stringContaining('too many concurrent tool calls') });
    // Another caller has slots of its own.
    expect((await call('bob', 4, 'plain__chatty')).result).toMatchObject({ content: [{ text: 'chatted' }] });
    upstream.gate.release();
    for (const answer of await Promise.all(held)) expect(answer.result).toMatchObject({ content: [{ text: 'released' }] });
    expect((await call('ann', 5, 'plain__chatty')).result).toMatchObject({ content: [{ text: 'chatted' }] });
  });
});

describe('a 2025 upstream that forgets our session', () => {
  it('is reconnected on the 404 to our session id, and the next call succeeds', async () => {
    const transports = new Map<string, LegacyServerTransport>();
    let sessionsOpened = 0;
    const http: HttpServer = createServer(asyncRequestListener(async (req, res) => {
      const sessionId = req.headers['mcp-session-id'];
      let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined;
      if (!transport) {
        if (sessionId) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        const created: LegacyServerTransport = new LegacyServerTransport({
          sessionIdGenerator: randomUUID,
          onsessioninitialized: (id) => {
            sessionsOpened++;
            transports.set(id, created);
          },
        });
        const server = new LegacyMcpServer({ name: 'forgetful', version: '1.0.0' });
        server.registerTool('ping', { inputSchema: {} }, async () => ({ content: [{ type: 'text' as const, text: 'pong' }] }));
        await server.connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res);
    }));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const gateway = await startGateway(testConfig({ old: { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp` } }));
    try {
      expect(gateway.conflux.upstreams.get('old')?.status()).toMatchObject({ state: 'ready', protocol: { era: 'legacy' } });
      expect(textOf(await gateway.conflux.callTool({ name: 'old__ping', arguments: {} }))).toBe('pong');
      transports.clear(); // the upstream restarted
      const lost = await gateway.conflux.callTool({ name: 'old__ping', arguments: {} });
      expect(lost).toMatchObject({ isError: true });
      await waitFor(() => sessionsOpened === 2 && gateway.conflux.upstreams.get('old')?.status().state === 'ready', 10_000, 'a new upstream session');
      expect(textOf(await gateway.conflux.callTool({ name: 'old__ping', arguments: {} }))).toBe('pong');
    } finally {
      await gateway.stop();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

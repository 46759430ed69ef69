import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client as ClientV2, SSEClientTransport as SSEClientTransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport as SSEClientTransportV1 } from '@modelcontextprotocol/sdk/client/sse.js';
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SseSessionTransport } from '../../src/gateway/sse-session-transport.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { answersAfterNotifications } from '../helpers/answers-after-notifications.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { freshPglite } from '../helpers/databases.js';
import { ROOT, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

const run = promisify(execFile);

/** What a test needs from an SDK client, whichever major version it is. */
interface SseClient {
  tools(): Promise<string[]>;
  call(name: string, args: Record<string, unknown>, onprogress?: (progress: number) => void): Promise<object>;
  setLevel(level: 'info'): Promise<void>;
  logs: { level: string; logger?: string | undefined; data: unknown }[];
  close(): Promise<void>;
}

/** The v1 SDK client over its SSE transport, answering sampling as `name`. */
async function v1Client(sseUrl: string, name: string): Promise<SseClient> {
  const client = new ClientV1({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
  const logs: SseClient['logs'] = [];
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
    role: 'assistant',
    model: 'test',
    content: { type: 'text', text: `${name} answers ${(request.params.messages[0]!.content as { text: string }).text}` },
  }));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
  const transport = new SSEClientTransportV1(new URL(sseUrl));
  await client.connect(transport);
  // Or the SDK loses a progress report read in one chunk with the answer behind it.
  answersAfterNotifications(transport);
  return {
    tools: async () => (await client.listTools()).tools.map((t) => t.name),
    call: (toolName, args, onprogress) => client.callTool({ name: toolName, arguments: args }, undefined, onprogress ? { onprogress: (p) => onprogress(p.progress) } : {}),
    setLevel: async (level) => void (await client.setLoggingLevel(level)),
    logs,
    close: () => client.close(),
  };
}

/** The v2 client over its SSE transport, answering sampling as `name`. */
async function v2Client(sseUrl: string, name: string): Promise<SseClient> {
  const client = new ClientV2({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
  const logs: SseClient['logs'] = [];
  client.setRequestHandler('sampling/createMessage', async (request) => ({
    role: 'assistant',
    model: 'test',
    content: { type: 'text', text: `${name} answers ${(request.params.messages[0]!.content as { text: string }).text}` },
  }));
  client.setNotificationHandler('notifications/message', (n) => void logs.push(n.params));
  const transport = new SSEClientTransportV2(new URL(sseUrl));
  await client.connect(transport);
  // Or the SDK loses a progress report read in one chunk with the answer behind it.
  answersAfterNotifications(transport);
  return {
    tools: async () => (await client.listTools()).tools.map((t) => t.name),
    call: (toolName, args, onprogress) => client.callTool({ name: toolName, arguments: args }, onprogress ? { onprogress: (p) => onprogress(p.progress) } : {}),
    setLevel: async (level) => void (await client.setLoggingLevel(level)),
    logs,
    close: () => client.close(),
  };
}

interface SseEvent {
  event: string;
  data: string;
}

/** A GET /sse read by hand: the events as they come, and whether the gateway ended it. */
interface RawStream {
  status: number;
  /** The endpoint event's URL, absolute. */
  endpoint: string;
  sessionId: string;
  next(): Promise<SseEvent>;
  ended: Promise<'ended'>;
  cancel(): Promise<void>;
}

async function openRaw(base: string, headers: Record<string, string> = {}): Promise<RawStream> {
  const response = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream', ...headers } });
  if (response.status !== 200 || !response.body) {
    await response.body?.cancel();
    return { status: response.status, endpoint: '', sessionId: '', next: () => Promise.reject(new Error('no stream')), ended: Promise.resolve('ended'), cancel: async () => {} };
  }
  const queue: SseEvent[] = [];
  let wake: (() => void) | undefined;
  const parser = createParser({
    onEvent: (e) => {
      queue.push({ event: e.event ?? 'message', data: e.data });
      wake?.();
    },
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    wake?.();
    return 'ended' as const;
  })();
  let finished = false;
  void ended.then(() => (finished = true));
  const next = async (): Promise<SseEvent> => {
    while (queue.length === 0) {
      if (finished) throw new Error('stream ended');
      await new Promise<void>((r) => (wake = r));
    }
    return queue.shift()!;
  };
  const first = await next();
  expect(first.event).toBe('endpoint');
  const endpoint = new URL(first.data, `${base}/sse`);
  return { status: 200, endpoint: endpoint.href, sessionId: endpoint.searchParams.get('sessionId') ?? '', next, ended, cancel: () => reader.cancel().catch(() => {}) };
}

function post(url: string, message: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof message === 'string' ? message : JSON.stringify(message) });
}

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

/** Opens a session by hand and initializes it. */
async function initializedRaw(base: string, headers: Record<string, string> = {}): Promise<RawStream> {
  const stream = await openRaw(base, headers);
  expect(stream.status).toBe(200);
  expect((await post(stream.endpoint, INITIALIZE, headers)).status).toBe(202);
  expect(JSON.parse((await stream.next()).data)).toMatchObject({ id: 1, result: { protocolVersion: '2024-11-05' } });
  expect((await post(stream.endpoint, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).status).toBe(202);
  return stream;
}

describe('the 2024-11-05 HTTP+SSE transport', () => {
  let gateway: RunningGateway;
  let base: string;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
    base = gateway.url.replace(/\/mcp$/, '');
  });
  afterAll(async () => gateway?.stop());

  it.each([
    ['v1', v1Client],
    ['v2', v2Client],
  ])('the %s SDK client lists and calls tools, gets progress and logs, and answers sampling over the stream', async (version, connect) => {
    const client = await connect(`${base}/sse`, `sse-${version}`);
    try {
      expect(gateway.conflux.sessions.size).toBe(1);
      expect(await client.tools()).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__count', 'alpha__ask_llm']));
      expect(textOf(await client.call('alpha__echo', { text: 'over sse' }))).toBe('alpha: over sse');

      const progress: number[] = [];
      expect(textOf(await client.call('alpha__count', { n: 3 }, (p) => void progress.push(p)))).toBe('alpha counted to 3');
      expect(progress).toEqual([1, 2, 3]);

      await client.setLevel('info');
      expect(textOf(await client.call('alpha__log', { text: 'hi' }))).toBe('logged');
      await waitFor(() => client.logs.length >= 2, 5000, 'log messages');
      expect(client.logs.map((l) => [l.level, l.logger, l.data])).toEqual([
        ['info', 'alpha/demo', 'alpha info: hi'],
        ['error', 'alpha/demo', 'alpha error: hi'],
      ]);

      // A server-to-client request: the upstream's sampling goes out on the stream, the answer comes back as a post.
      expect(textOf(await client.call('alpha__ask_llm', { question: 'why?' }))).toBe(`alpha heard: sse-${version} answers why?`);
    } finally {
      await client.close();
    }
    // Closing the client ends its GET stream, which closes the session.
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });

  it('the first event names the message endpoint; a post is accepted with 202 and answered on the stream', async () => {
    const stream = await openRaw(base);
    try {
      expect(stream.endpoint).toMatch(new RegExp(`^${base}/messages\\?sessionId=[0-9a-f-]{36}$`));
      expect(gateway.conflux.sessions.get(stream.sessionId)?.openStreams).toBe(1);
      const accepted = await post(stream.endpoint, INITIALIZE);
      expect(accepted.status).toBe(202);
      const answer = await stream.next();
      expect(answer.event).toBe('message');
      expect(JSON.parse(answer.data)).toMatchObject({ jsonrpc: '2.0', id: 1, result: { serverInfo: { name: 'conflux' } } });
    } finally {
      await stream.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });

  it('refuses unknown, malformed and missing session ids, batches and bodies that are not JSON-RPC', async () => {
    const stream = await initializedRaw(base);
    try {
      const unknown = await post(`${base}/messages?sessionId=00000000-0000-4000-8000-000000000000`, { jsonrpc: '2.0', id: 2, method: 'ping' });
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toEqual({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      const malformed = await post(`${base}/messages?sessionId=../../etc`, { jsonrpc: '2.0', id: 2, method: 'ping' });
      expect(malformed.status).toBe(404);
      expect(await malformed.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32001 } });
      const missing = await post(`${base}/messages`, { jsonrpc: '2.0', id: 2, method: 'ping' });
      expect(missing.status).toBe(400);
      expect(await missing.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });

      expect(await (await post(stream.endpoint, '{"jsonrpc":')).json()).toMatchObject({ error: { code: -32700 } });
      expect(await (await post(stream.endpoint, [{ jsonrpc: '2.0', id: 3, method: 'ping' }])).json()).toMatchObject({ error: { code: -32600 } });
      expect(await (await post(stream.endpoint, { hello: 'world' })).json()).toMatchObject({ error: { code: -32600 } });
      const deep = await post(stream.endpoint, `{"jsonrpc":"2.0","id":4,"method":"ping","params":{"x":${'['.repeat(100)}${']'.repeat(100)}}}`);
      expect(deep.status).toBe(400);
      expect(await deep.json()).toMatchObject({ error: { code: -32600 } });
      const text = await fetch(stream.endpoint, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"jsonrpc":"2.0","id":5,"method":"ping"}' });
      expect(text.status).toBe(415);
      await text.body?.cancel();

      // None of these reached the session: the next answer on the stream is this ping's.
      expect((await post(stream.endpoint, { jsonrpc: '2.0', id: 6, method: 'ping' })).status).toBe(202);
      expect(JSON.parse((await stream.next()).data)).toEqual({ jsonrpc: '2.0', id: 6, result: {} });
    } finally {
      await stream.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });

  it('a session opened on /sse is not reachable through /mcp, nor a /mcp session through /messages', async () => {
    const stream = await initializedRaw(base);
    try {
      const viaMcp = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': stream.sessionId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      });
      expect(viaMcp.status).toBe(404);
      await viaMcp.body?.cancel();
      const init = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ ...INITIALIZE, params: { ...INITIALIZE.params, protocolVersion: '2025-06-18' } }),
      });
      await init.body?.cancel();
      const mcpSession = init.headers.get('mcp-session-id')!;
      expect((await post(`${base}/messages?sessionId=${mcpSession}`, { jsonrpc: '2.0', id: 3, method: 'ping' })).status).toBe(404);
      await fetch(gateway.url, { method: 'DELETE', headers: { 'mcp-session-id': mcpSession } });
    } finally {
      await stream.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the sessions to close');
  });

  it('closing the stream closes the session and cancels its calls in flight upstream', async () => {
    const stream = await initializedRaw(base);
    expect((await post(stream.endpoint, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'alpha__work', arguments: {} } })).status).toBe(202);
    const status = async () => textOf(await gateway.conflux.callTool({ name: 'alpha__work_status', arguments: {} }));
    await waitFor(async () => (await status()) === 'running', 10_000, 'the work to start');
    expect(gateway.conflux.sessions.get(stream.sessionId)?.requestsInFlight.has(7)).toBe(true);
    await stream.cancel();
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
    await waitFor(async () => (await status()) === 'cancelled', 10_000, 'the upstream work to be cancelled');
  });

  it('a request the client cancels is no longer in flight: closing the session later sends no answer for it', async () => {
    const stream = await initializedRaw(base);
    expect((await post(stream.endpoint, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'alpha__work', arguments: {} } })).status).toBe(202);
    const status = async () => textOf(await gateway.conflux.callTool({ name: 'alpha__work_status', arguments: {} }));
    await waitFor(async () => (await status()) === 'running', 10_000, 'the work to start');
    expect(gateway.conflux.sessions.get(stream.sessionId)?.requestsInFlight.has(8)).toBe(true);
    expect((await post(stream.endpoint, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 8, reason: 'not needed' } })).status).toBe(202);
    await waitFor(async () => (await status()) === 'cancelled', 10_000, 'the upstream work to be cancelled');
    expect(gateway.conflux.sessions.get(stream.sessionId)?.requestsInFlight.size).toBe(0);
    await gateway.conflux.sessions.close(stream.sessionId);
    await stream.ended;
    const after: SseEvent[] = [];
    for (;;) {
      const event = await stream.next().catch(() => undefined);
      if (!event) break;
      after.push(event);
    }
    expect(after.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as { id?: unknown })).not.toContainEqual(expect.objectContaining({ id: 8 }));
  });

  it('refuses a foreign Origin on GET /sse and POST /messages, opening nothing', async () => {
    const refused = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream', origin: 'http://evil.example' } });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('Origin');
    const stream = await initializedRaw(base);
    try {
      const foreign = await post(stream.endpoint, { jsonrpc: '2.0', id: 2, method: 'ping' }, { origin: 'http://evil.example' });
      expect(foreign.status).toBe(403);
      await foreign.body?.cancel();
      expect(gateway.conflux.sessions.size).toBe(1);
    } finally {
      await stream.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });

  it('the MCP Inspector CLI lists tools with --transport sse', async () => {
    const env = { ...process.env, MCP_CATALOG_PATH: join(await mkdtemp(join(tmpdir(), 'inspector-')), 'catalog.json') };
    const { stdout } = await run(join(ROOT, 'node_modules/.bin/mcp-inspector'), ['--cli', `${base}/sse`, '--transport', 'sse', '--method', 'tools/list'], { env, timeout: 30_000 });
    const names = (JSON.parse(stdout) as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__add']));
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });
});

describe('a last progress report that reaches the gateway in one chunk with the answer', () => {
  // Its upstream writes a call's last progress report and the answer in one write: the gateway
  // then relays both in one turn, and a client in this process reads them in one chunk.
  let gateway: RunningGateway;
  let base: string;

  beforeAll(async () => {
    const co = { transport: 'stdio', command: process.execPath, args: [...nodeArgs('tests/fixtures/coalescing-stdio-server.ts'), 'co'], cwd: ROOT };
    gateway = await startGateway(testConfig({ co }));
    base = gateway.url.replace(/\/mcp$/, '');
  });
  afterAll(async () => gateway?.stop());

  it('goes out on the stream before the answer', async () => {
    const stream = await initializedRaw(base);
    try {
      const call = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'co__count', arguments: { n: 3 }, _meta: { progressToken: 'count' } } };
      expect((await post(stream.endpoint, call)).status).toBe(202);
      const messages: { id?: number; params?: { progress?: number } }[] = [];
      while (messages.at(-1)?.id !== 2) messages.push(JSON.parse((await stream.next()).data) as (typeof messages)[number]);
      expect(messages.map((m) => m.params?.progress ?? `answer ${m.id}`)).toEqual([1, 2, 3, 'answer 2']);
    } finally {
      await stream.cancel();
    }
  });

  it.each([
    ['v1', v1Client],
    ['v2', v2Client],
  ])('reaches the %s SDK client before the answer, call after call', async (version, connect) => {
    const client = await connect(`${base}/sse`, `sse-${version}`);
    try {
      for (let i = 0; i < 5; i++) {
        const progress: number[] = [];
        expect(textOf(await client.call('co__count', { n: 3 }, (p) => void progress.push(p)))).toBe('co counted to 3');
        expect(progress).toEqual([1, 2, 3]);
      }
    } finally {
      await client.close();
    }
  });
});

describe('HTTP+SSE sessions belong to the principal that opened them', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  let keyA: string;
  let keyB: string;

  beforeAll(async () => {
    database = await freshPglite().open();
    gateway = await startGateway(
      testConfig({ alpha: stdioFixture('alpha') }, { auth: { apiKeys: true }, access: { defaultLevel: 'call' }, limits: { maxSessionsPerPrincipal: 1 } }),
      { database },
    );
    base = gateway.url.replace(/\/mcp$/, '');
    keyA = (await gateway.conflux.apiKeys!.create({ name: 'a', subject: 'bot-a', groups: [] })).key;
    keyB = (await gateway.conflux.apiKeys!.create({ name: 'b', subject: 'bot-b', groups: [] })).key;
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  it('needs a credential on both routes', async () => {
    const stream = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' } });
    expect(stream.status).toBe(401);
    expect(await stream.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32004 } });
    const message = await post(`${base}/messages?sessionId=00000000-0000-4000-8000-000000000000`, { jsonrpc: '2.0', id: 1, method: 'ping' });
    expect(message.status).toBe(401);
    await message.body?.cancel();
    expect(gateway.conflux.sessions.size).toBe(0);
  });

  it("another principal's post to a session is 404 and never reaches it", async () => {
    const a = await initializedRaw(base, { 'x-api-key': keyA });
    try {
      const session = gateway.conflux.sessions.get(a.sessionId)!;
      expect(session.principal).not.toBe('');
      const seen = session.lastSeen;
      const foreign = await post(a.endpoint, { jsonrpc: '2.0', id: 50, method: 'ping' }, { 'x-api-key': keyB });
      expect(foreign.status).toBe(404);
      expect(await foreign.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' } });
      expect(session.lastSeen).toBe(seen);
      // The next message on A's stream answers A's own ping: B's never got there.
      expect((await post(a.endpoint, { jsonrpc: '2.0', id: 51, method: 'ping' }, { 'x-api-key': keyA })).status).toBe(202);
      expect(JSON.parse((await a.next()).data)).toEqual({ jsonrpc: '2.0', id: 51, result: {} });
    } finally {
      await a.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
  });

  it('counts against the per-principal session limit together with /mcp sessions', async () => {
    const a = await initializedRaw(base, { 'x-api-key': keyA });
    try {
      const second = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream', 'x-api-key': keyA } });
      expect(second.status).toBe(429);
      await second.body?.cancel();
      const viaMcp = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-api-key': keyA },
        body: JSON.stringify({ ...INITIALIZE, params: { ...INITIALIZE.params, protocolVersion: '2025-06-18' } }),
      });
      expect(viaMcp.status).toBe(429);
      await viaMcp.body?.cancel();
      // Another principal is not held back by A's sessions.
      const b = await initializedRaw(base, { 'x-api-key': keyB });
      await b.cancel();
    } finally {
      await a.cancel();
    }
    await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the sessions to close');
  });

  it('a revoked key ends its stream and closes its session', async () => {
    const doomed = await gateway.conflux.apiKeys!.create({ name: 'doomed', subject: 'bot-c', groups: [] });
    const stream = await initializedRaw(base, { 'x-api-key': doomed.key });
    try {
      expect(gateway.conflux.sessions.size).toBe(1);
      await gateway.conflux.apiKeys!.revoke('doomed');
      expect(await stream.ended).toBe('ended');
      await waitFor(() => gateway.conflux.sessions.size === 0, 5000, 'the session to close');
    } finally {
      await stream.cancel();
    }
  });
});

describe('idle HTTP+SSE sessions', () => {
  it('are closed like any other, which ends their stream', async () => {
    const gateway = await startGateway(testConfig({}, { sessionIdleSeconds: 0.3 }));
    try {
      const stream = await initializedRaw(gateway.url.replace(/\/mcp$/, ''));
      expect(await stream.ended).toBe('ended');
      expect(gateway.conflux.sessions.size).toBe(0);
    } finally {
      await gateway.stop();
    }
  });
});

describe('SseSessionTransport', () => {
  const read = async (reader: ReadableStreamDefaultReader<Uint8Array>) => {
    const { done, value } = await reader.read();
    return done ? undefined : new TextDecoder().decode(value);
  };

  it('writes the endpoint first, then keep-alive comments, and leaves no timer once the client goes away', async () => {
    vi.useFakeTimers();
    try {
      const transport = new SseSessionTransport({ endpoint: '/messages', keepAliveMs: 1000 });
      let closed = 0;
      transport.onclose = () => void closed++;
      await transport.start();
      const reader = transport.stream.getReader();
      expect(await read(reader)).toBe(`event: endpoint\ndata: /messages?sessionId=${transport.sessionId}\n\n`);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(1000);
      expect(await read(reader)).toBe(': keep-alive\n\n');
      await transport.send({ jsonrpc: '2.0', id: 1, result: {} });
      expect(await read(reader)).toBe('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
      await reader.cancel();
      await transport.ended;
      expect(closed).toBe(1);
      expect(vi.getTimerCount()).toBe(0);
      await expect(transport.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } })).rejects.toThrow(/Not connected/);
      await transport.close();
      expect(closed).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('ends the stream when closed by the server, with no timer left', async () => {
    vi.useFakeTimers();
    try {
      const transport = new SseSessionTransport({ endpoint: '/messages', keepAliveMs: 1000 });
      const answered: unknown[] = [];
      transport.onanswer = (id) => void answered.push(id);
      await transport.start();
      const reader = transport.stream.getReader();
      await read(reader);
      await transport.send({ jsonrpc: '2.0', id: 'a', error: { code: -32000, message: 'Session closed' } });
      await transport.send({ jsonrpc: '2.0', id: 9, method: 'ping' });
      expect(answered).toEqual(['a']);
      await transport.close();
      await read(reader);
      await read(reader);
      expect(await read(reader)).toBeUndefined();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

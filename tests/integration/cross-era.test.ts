import { createServer } from 'node:http';
import { Client, StreamableHTTPClientTransport, type ClientCapabilities } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, ElicitResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { listening, sdkSessions, startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { startModernOnlyServer, type ModernOnlyServer } from '../fixtures/modern-only-server.js';
import { openSession, startGateway, stdioFixture, testConfig, textOf, waitFor, type ClientSession, type RunningGateway } from '../helpers/gateway.js';
import { modernRequest, type RpcMessage } from '../helpers/modern-request.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';

/**
 * A 2026-07-28 client calling, through the gateway, a tool of a 2025 upstream that asks the
 * client things mid-call (sampling, elicitation, roots): the gateway answers `input_required`,
 * holds the upstream call, and the client's retry carries the answers to it. And the reverse:
 * a 2025 client calling a 2026 upstream that answers `input_required`.
 */

const ASKING = { env: { ASK_TOOLS: '1' }, roots: [{ uri: 'file:///srv/alpha', name: 'configured' }] };
const ALL: ClientCapabilities = { sampling: {}, elicitation: { form: {} }, roots: {} };
const who = (name: string) => ({ 'x-user-email': `${name}@example.com` });

interface ModernPeer {
  client: Client;
  /** Requests of `method` the client sent, the first and every retry (`tools/call` when not named). */
  calls(method?: string): number;
  close(): Promise<void>;
}

/**
 * The SDK v2 client pinned to 2026-07-28, declaring `capabilities` and answering each request
 * with its own `name` (it fulfils `input_required` through these handlers by itself).
 */
async function modernPeer(
  url: string,
  name: string,
  capabilities: ClientCapabilities = ALL,
  handlers: { elicit?: () => Promise<Record<string, unknown>> } = {},
  headers: Record<string, string> = who(name),
): Promise<ModernPeer> {
  const client = new Client({ name, version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities });
  if (capabilities.sampling) {
    client.setRequestHandler('sampling/createMessage', async (request) => {
      const question = (request.params.messages[0]!.content as { text: string }).text;
      return { role: 'assistant', model: 'test', content: { type: 'text', text: `${name} answers ${question}` } };
    });
  }
  if (capabilities.elicitation) {
    client.setRequestHandler('elicitation/create', (handlers.elicit ?? (async () => ({ action: 'accept', content: { name } }))) as never);
  }
  if (capabilities.roots) client.setRequestHandler('roots/list', async () => ({ roots: [{ uri: `file:///home/${name}`, name }] }));
  const sent = new Map<string, number>();
  const counting: typeof fetch = (input, init) => {
    const method = typeof init?.body === 'string' ? (JSON.parse(init.body) as { method?: string }).method : undefined;
    if (method) sent.set(method, (sent.get(method) ?? 0) + 1);
    return fetch(input, init);
  };
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: counting, requestInit: { headers } }));
  return { client, calls: (method = 'tools/call') => sent.get(method) ?? 0, close: () => client.close() };
}

/** A 2025 session client (SDK v1) declaring elicitation only, answering with `name`. */
async function legacyPeer(url: string, name: string): Promise<ClientSession<LegacyClient>> {
  const client = new LegacyClient({ name, version: '1.0.0' }, { capabilities: { elicitation: {} } });
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { answer: name } }));
  return openSession(client, new LegacyTransport(new URL(url), { requestInit: { headers: who(name) } }));
}

/** One raw 2026-07-28 request (`tools/call` unless told), by default from ann declaring every capability; the JSON-RPC answer. */
async function rawCall(
  url: string,
  id: number,
  params: Record<string, unknown>,
  options: { headers?: Record<string, string>; capabilities?: ClientCapabilities; signal?: AbortSignal; method?: string } = {},
): Promise<RpcMessage> {
  const { method = 'tools/call', headers = who('ann'), capabilities = ALL, signal } = options;
  return (await modernRequest(url, method, params, { id, headers, capabilities, signal })).answer;
}

/** The text of a raw answer's tool result. */
const resultText = (answer: RpcMessage) => textOf(answer.result ?? {});

/** The same state with one character of its signed body changed. */
function tampered(state: string): string {
  const at = 'conflux.paused.v1.'.length + 4;
  return state.slice(0, at) + (state[at] === 'A' ? 'B' : 'A') + state.slice(at + 1);
}

describe('a 2026-07-28 client calling a 2025 upstream that asks it things mid-call', () => {
  let http: RunningUpstream;
  let modern: ModernOnlyServer;
  let gateway: RunningGateway;
  let ann: ModernPeer;
  const paused = () => gateway.conflux.inputRounds.paused;
  const status = async () => resultText(await rawCall(gateway.url, 900, { name: 'alpha__ask_status', arguments: {} }));

  beforeAll(async () => {
    http = await startStreamableUpstream('beta');
    modern = await startModernOnlyServer();
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha', ASKING), beta: { url: http.url }, modern: { url: modern.url } },
        { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' } },
      ),
    );
    ann = await modernPeer(gateway.url, 'ann');
  }, 60_000);
  afterAll(async () => {
    await ann?.close();
    await gateway?.stop();
    await modern?.stop();
    await http?.close();
  });

  it.each(['alpha', 'beta'])('completes a sampling round: the upstream reads the answer of the client (%s)', async (server) => {
    const before = ann.calls();
    const result = await ann.client.callTool({ name: `${server}__ask_llm`, arguments: { question: 'why?' } });
    expect(textOf(result)).toBe(`${server} heard: ann answers why?`);
    expect(ann.calls() - before).toBe(2);
    expect(paused()).toBe(0);
  });

  it('says input_required on the wire, with the request and a state of its own, and takes the answer on the retry', async () => {
    const asked = await rawCall(gateway.url, 1, { name: 'alpha__ask_llm', arguments: { question: 'how?' } });
    expect(asked.result).toMatchObject({
      resultType: 'input_required',
      inputRequests: { 'sampling-1': { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'how?' } }], maxTokens: 50 } } },
    });
    expect(asked.result?.requestState).toMatch(/^conflux\.paused\.v1\./);
    expect(paused()).toBe(1);
    const answer = { role: 'assistant', model: 'm', content: { type: 'text', text: 'raw answer' } };
    const done = await rawCall(gateway.url, 2, { name: 'alpha__ask_llm', arguments: { question: 'how?' }, inputResponses: { 'sampling-1': answer }, requestState: asked.result?.requestState });
    expect(done.result).toMatchObject({ resultType: 'complete' });
    expect(resultText(done)).toBe('alpha heard: raw answer');
    expect(paused()).toBe(0);
  });

  it('relays an elicitation, accepted or declined', async () => {
    expect(textOf(await ann.client.callTool({ name: 'alpha__ask_user', arguments: {} }))).toBe('alpha: accept ann');
    const asked = await rawCall(gateway.url, 3, { name: 'alpha__ask_user', arguments: {} });
    expect(asked.result?.inputRequests).toEqual({ 'elicitation-1': { method: 'elicitation/create', params: expect.objectContaining({ message: 'Your name?' }) } });
    const declined = await rawCall(gateway.url, 4, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'decline' } }, requestState: asked.result?.requestState });
    expect(resultText(declined)).toBe('alpha: decline ');
  });

  it("asks roots of a client that declared them, and answers the server's configured roots to one that did not", async () => {
    expect(textOf(await ann.client.callTool({ name: 'alpha__list_roots', arguments: {} }))).toBe('file:///home/ann');
    const rootless = await modernPeer(gateway.url, 'cleo', { sampling: {} });
    try {
      expect(textOf(await rootless.client.callTool({ name: 'alpha__list_roots', arguments: {} }))).toBe('file:///srv/alpha');
      expect(rootless.calls()).toBe(1);
    } finally {
      await rootless.close();
    }
  });

  it('runs two rounds in one call', async () => {
    const before = ann.calls();
    expect(textOf(await ann.client.callTool({ name: 'alpha__ask_twice', arguments: {} }))).toBe('alpha asked twice: accept ann; ann answers greet ann');
    expect(ann.calls() - before).toBe(3);
    expect(paused()).toBe(0);
  });

  it('asks the same way while a prompt is got or a resource read', async () => {
    const before = { prompts: ann.calls('prompts/get'), reads: ann.calls('resources/read') };
    const prompt = await ann.client.getPrompt({ name: 'alpha__asking' });
    expect(prompt.messages[0]?.content).toEqual({ type: 'text', text: 'alpha greets ann' });
    const read = await ann.client.readResource({ uri: 'ask://alpha/name' });
    expect(read.contents).toEqual([{ uri: 'ask://alpha/name', text: 'alpha read ann' }]);
    // Each asked once: the request, then its retry with the answer.
    expect([ann.calls('prompts/get') - before.prompts, ann.calls('resources/read') - before.reads]).toEqual([2, 2]);
    expect(paused()).toBe(0);
  });

  it('refuses sampling to a client that did not declare it, as it does on a 2025 session', async () => {
    const modernCaller = await modernPeer(gateway.url, 'dora', { elicitation: {} });
    const legacyCaller = await legacyPeer(gateway.url, 'dora');
    try {
      const modernResult = await modernCaller.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'x' } });
      const legacyResult = await legacyCaller.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'x' } });
      expect(modernResult.isError).toBe(true);
      expect(textOf(modernResult)).toContain('the client does not support sampling/createMessage');
      expect(textOf(modernResult)).toBe(textOf(legacyResult));
      expect(modernCaller.calls()).toBe(1);
    } finally {
      await modernCaller.close();
      await legacyCaller.close();
    }
  });

  it("refuses a tampered state and another principal's, leaving the paused call to its own retry", async () => {
    const asked = await rawCall(gateway.url, 5, { name: 'alpha__ask_user', arguments: {} });
    const state = asked.result!.requestState!;
    const retry = (id: number, requestState: string, name: string) =>
      rawCall(gateway.url, id, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name } } }, requestState }, { headers: who(name) });
    for (const refused of [await retry(6, tampered(state), 'ann'), await retry(7, state, 'bob')]) {
      expect(refused.error).toMatchObject({ code: -32602, message: 'Invalid or expired requestState' });
    }
    expect(paused()).toBe(1);
    expect(resultText(await retry(8, state, 'ann'))).toBe('alpha: accept ann');
    // Taken once: the same state again names nothing.
    expect((await retry(9, state, 'ann')).error).toMatchObject({ code: -32602 });
  });

  it('answers -32602 to a retry that leaves a request unanswered, and ends the upstream call', async () => {
    const asked = await rawCall(gateway.url, 10, { name: 'alpha__ask_then_work', arguments: {} });
    expect(Object.keys(asked.result?.inputRequests ?? {})).toEqual(['elicitation-1']);
    const incomplete = await rawCall(gateway.url, 11, { name: 'alpha__ask_then_work', arguments: {}, inputResponses: {}, requestState: asked.result?.requestState });
    expect(incomplete.error).toMatchObject({ code: -32602, data: { missing: ['elicitation-1'] } });
    await waitFor(async () => (await status()).startsWith('cancelled while'), 10_000, 'the upstream call to be cancelled');
    expect(paused()).toBe(0);
  });

  it('cancels the upstream call when the client goes away during a round', async () => {
    const asked = await rawCall(gateway.url, 12, { name: 'alpha__ask_then_work', arguments: {} });
    const leaving = new AbortController();
    const retry = rawCall(
      gateway.url,
      13,
      { name: 'alpha__ask_then_work', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: asked.result?.requestState },
      { signal: leaving.signal },
    ).catch((error: unknown) => error);
    await waitFor(async () => (await status()) === 'working after accept ann', 10_000, 'the upstream to take the answer');
    leaving.abort();
    await retry;
    await waitFor(async () => (await status()) === 'cancelled while working after accept ann', 10_000, 'the upstream call to be cancelled');
    expect(paused()).toBe(0);
  });

  it("passes a 2026 upstream's own input_required through unchanged, and tells it the caller's capabilities", async () => {
    const asked = await rawCall(gateway.url, 14, { name: 'modern__ask', arguments: {} }, { capabilities: { elicitation: { form: {} }, roots: { listChanged: true } } });
    expect(asked.result).toMatchObject({ resultType: 'input_required', inputRequests: { answer: { method: 'elicitation/create' } }, requestState: 'asked-once' });
    expect(paused()).toBe(0);
    const seen = modern.received().filter((m) => m.method === 'tools/call').at(-1);
    expect(seen?.params?._meta).toMatchObject({ 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} }, roots: {} } });
    expect((seen?.params?._meta as Record<string, Record<string, unknown>>)['io.modelcontextprotocol/clientCapabilities']).toEqual({ elicitation: { form: {} }, roots: {} });
    const answered = await rawCall(gateway.url, 15, { name: 'modern__ask', arguments: {}, inputResponses: { answer: { action: 'accept', content: { answer: 'yes' } } }, requestState: 'asked-once' });
    expect(resultText(answered)).toBe('{"answer":"yes"} (state: asked-once)');
    expect(textOf(await ann.client.callTool({ name: 'modern__ask', arguments: {} }))).toBe('{"name":"ann"} (state: asked-once)');
  });

  it('lets a 2025 client answer a 2026 upstream that asks with input_required (the SDK asks it on its session)', async () => {
    const legacy = await legacyPeer(gateway.url, 'erin');
    try {
      expect(textOf(await legacy.client.callTool({ name: 'modern__ask', arguments: {} }))).toBe('{"answer":"erin"} (state: asked-once)');
      const seen = modern.received().filter((m) => m.method === 'tools/call').at(-1);
      // As the session's SDK server reads what the client declared at initialize.
      expect((seen?.params?._meta as Record<string, unknown>)['io.modelcontextprotocol/clientCapabilities']).toEqual({ elicitation: { form: {} } });
    } finally {
      await legacy.close();
    }
  });
});

describe('a paused call its client never resumes', () => {
  let gateway: RunningGateway;
  const status = async () => resultText(await rawCall(gateway.url, 900, { name: 'alpha__ask_status', arguments: {} }, { headers: {} }));

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha', ASKING) }, { limits: { pausedCallSeconds: 1 } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
  });

  it('is cancelled upstream when it expires, and leaves nothing behind', async () => {
    const asked = await rawCall(gateway.url, 1, { name: 'alpha__ask_then_work', arguments: {} }, { headers: {} });
    expect(asked.result?.resultType).toBe('input_required');
    await waitFor(async () => (await status()) === 'cancelled while asking', 10_000, 'the upstream call to be cancelled');
    expect(gateway.conflux.inputRounds.paused).toBe(0);
    const late = await rawCall(
      gateway.url,
      2,
      { name: 'alpha__ask_then_work', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'x' } } }, requestState: asked.result?.requestState },
      { headers: {} },
    );
    expect(late.error).toMatchObject({ code: -32602, message: 'Invalid or expired requestState' });
  });

  it('of a client that went away mid-round: cancelled at expiry', async () => {
    let asked = () => {};
    let giveUp = (_error: Error) => {};
    const question = new Promise<void>((resolve) => (asked = resolve));
    // The client is asked, and leaves without answering.
    const peer = await modernPeer(gateway.url, 'gone', { elicitation: {} }, { elicit: () => (asked(), new Promise((_resolve, reject) => (giveUp = reject))) }, {});
    const call = peer.client.callTool({ name: 'alpha__ask_then_work', arguments: {} }).catch((error: unknown) => error);
    await question;
    expect(gateway.conflux.inputRounds.paused).toBe(1);
    await peer.close();
    giveUp(new Error('the user closed the window'));
    expect(await call).toBeInstanceOf(Error);
    await waitFor(async () => (await status()) === 'cancelled while asking', 10_000, 'the upstream call to be cancelled');
    expect(gateway.conflux.inputRounds.paused).toBe(0);
  });
});

/** A 2025 Streamable HTTP upstream (its requests name the call they belong to) whose prompt asks the client for a name. */
async function askingPromptUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const sessions = sdkSessions(() => {
    const server = createDemoServer('up');
    server.registerPrompt('asking', { description: 'Asks for a name' }, async (extra) => {
      const named = await extra.sendRequest(
        { method: 'elicitation/create', params: { mode: 'form', message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } } },
        ElicitResultSchema,
      );
      return { messages: [{ role: 'user', content: { type: 'text', text: `up greets ${String(named.content?.name ?? '')}` } }] };
    });
    return server;
  });
  return listening(createServer(asyncRequestListener((req, res) => sessions.handle(req, res))), '/mcp', () => sessions.opened, () => sessions.close());
}

const TRUSTED = { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' as const } };

describe('paused calls of several callers', () => {
  let up: { url: string; close(): Promise<void> };
  let gateway: RunningGateway;

  beforeAll(async () => {
    up = await askingPromptUpstream();
    gateway = await startGateway(testConfig({ up: { url: up.url } }, { ...TRUSTED, limits: { maxSessions: 3, maxConcurrentCallsPerSession: 1 } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await up?.close();
  });

  it("hold one caller to its own share: its prompt gets and reads wait in its call slots, as its tool calls do, and the next caller is still asked", async () => {
    const paused = await rawCall(gateway.url, 1, { name: 'up__ask_user', arguments: {} }, { headers: who('ann') });
    expect(paused.result?.resultType).toBe('input_required');
    for (const [id, method, params] of [
      [2, 'tools/call', { name: 'up__ask_user', arguments: {} }],
      [3, 'prompts/get', { name: 'up__asking' }],
      [4, 'prompts/get', { name: 'up__asking' }],
    ] as const) {
      const refused = await rawCall(gateway.url, id, params, { headers: who('ann'), method });
      expect(refused.error).toMatchObject({ code: -32000, message: expect.stringContaining('too many concurrent') });
    }
    expect(gateway.conflux.inputRounds.paused).toBe(1);
    const bob = await rawCall(gateway.url, 5, { name: 'up__asking' }, { headers: who('bob'), method: 'prompts/get' });
    expect(bob.result?.resultType).toBe('input_required');
    const answered = await rawCall(
      gateway.url,
      6,
      { name: 'up__asking', inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'bob' } } }, requestState: bob.result?.requestState },
      { headers: who('bob'), method: 'prompts/get' },
    );
    expect(answered.result?.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'up greets bob' } }]);
  });

});

describe('an abandoned paused call on a stdio upstream', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    // Long enough that bob's call below is answered before ann's expires, even on a loaded machine.
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha', ASKING) }, { ...TRUSTED, limits: { pausedCallSeconds: 12 } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
  });

  it("leaves another caller's mid-call request there unrelayed until it expires (pausedCallSeconds), no longer", async () => {
    const abandoned = await rawCall(gateway.url, 10, { name: 'alpha__ask_then_work', arguments: {} }, { headers: who('ann') });
    expect(abandoned.result?.resultType).toBe('input_required');
    // A stdio request names no call: with ann's call in flight, bob's elicitation could be hers.
    const meanwhile = await rawCall(gateway.url, 11, { name: 'alpha__ask_user', arguments: {} }, { headers: who('bob') });
    expect(resultText(meanwhile)).toContain('calls from several clients are in flight on "alpha"');
    await waitFor(() => gateway.conflux.inputRounds.paused === 0, 40_000, "ann's call to expire");
    const after = await rawCall(gateway.url, 12, { name: 'alpha__ask_user', arguments: {} }, { headers: who('bob') });
    expect(after.result?.resultType).toBe('input_required');
    expect(after.result?.inputRequests?.['elicitation-1']?.method).toBe('elicitation/create');
  });
});

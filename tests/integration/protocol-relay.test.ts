import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

interface Peer {
  client: Client;
  logs: LoggingMessageNotification['params'][];
  updates: string[];
  close(): Promise<void>;
}

/** An SDK client that declares sampling, elicitation and roots, answering each with its own `name`. */
async function peer(url: string, name: string, capabilities = { sampling: {}, elicitation: { form: {} }, roots: {} }): Promise<Peer> {
  const client = new Client({ name, version: '1.0.0' }, { capabilities });
  const logs: Peer['logs'] = [];
  const updates: string[] = [];
  if ('sampling' in capabilities) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      const question = (request.params.messages[0]!.content as { text: string }).text;
      return { role: 'assistant', model: 'test', content: { type: 'text', text: `${name} answers ${question}` } };
    });
  }
  if ('elicitation' in capabilities) {
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name } }));
  }
  if ('roots' in capabilities) {
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: `file:///home/${name}`, name }] }));
  }
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
    client,
    logs,
    updates,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

describe('full-protocol relay', () => {
  let http: RunningUpstream;
  let gateway: RunningGateway;
  let a: Peer;
  let b: Peer;

  beforeAll(async () => {
    http = await startStreamableUpstream('beta');
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha'), beta: { url: http.url } }));
    a = await peer(gateway.url, 'ann');
    b = await peer(gateway.url, 'bob');
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await gateway?.stop();
    await http?.close();
  });

  it('advertises the capabilities the upstreams offer', () => {
    expect(a.client.getServerCapabilities()).toMatchObject({
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { listChanged: true, subscribe: true },
      completions: {},
      logging: {},
    });
  });

  it('lists resources, keeping unique URIs and rewriting shared ones reversibly', async () => {
    const uris = (await a.client.listResources()).resources.map((r) => r.uri);
    expect(uris).toEqual(
      expect.arrayContaining(['demo://alpha/static', 'demo://beta/static', 'conflux://alpha/shared://readme', 'conflux://beta/shared://readme']),
    );
    expect(uris).not.toContain('shared://readme');
    const unique = await a.client.readResource({ uri: 'demo://beta/static' });
    expect(unique.contents).toEqual([{ uri: 'demo://beta/static', mimeType: 'text/plain', text: 'static text of beta' }]);
    const shared = await a.client.readResource({ uri: 'conflux://alpha/shared://readme' });
    expect(shared.contents).toEqual([{ uri: 'conflux://alpha/shared://readme', text: 'readme of alpha' }]);
  });

  it('lists templates and routes a URI that matches one', async () => {
    const templates = (await a.client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    expect(templates).toEqual(expect.arrayContaining(['demo://alpha/item/{id}', 'demo://beta/item/{id}']));
    const item = await a.client.readResource({ uri: 'demo://beta/item/7' });
    expect(textOf({ content: item.contents as never })).toBe('item 7 of beta');
  });

  it('answers an unknown resource with -32602 naming it (SDK 2 sends the old -32002 so on every revision)', async () => {
    await expect(a.client.readResource({ uri: 'nowhere://x' })).rejects.toMatchObject({ code: -32602, data: { uri: 'nowhere://x' } });
  });

  it('namespaces prompts and routes prompts/get', async () => {
    const names = (await a.client.listPrompts()).prompts.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['alpha__greet', 'beta__greet']));
    const prompt = await a.client.getPrompt({ name: 'beta__greet', arguments: { name: 'Ada' } });
    expect(prompt.messages[0]!.content).toEqual({ type: 'text', text: 'beta says hello to Ada' });
    await expect(a.client.getPrompt({ name: 'gamma__greet' })).rejects.toMatchObject({ code: -32602 });
  });

  it('routes completions for prompt and template arguments', async () => {
    const prompt = await a.client.complete({ ref: { type: 'ref/prompt', name: 'alpha__greet' }, argument: { name: 'name', value: 'A' } });
    expect(prompt.completion.values).toEqual(['Ada', 'Alan']);
    const template = await a.client.complete({
      ref: { type: 'ref/resource', uri: 'demo://beta/item/{id}' },
      argument: { name: 'id', value: 'ap' },
    });
    expect(template.completion.values).toEqual(['apple', 'apricot']);
  });

  it('relays log messages labelled with the server, at the level the session set', async () => {
    await a.client.setLoggingLevel('info');
    await a.client.callTool({ name: 'alpha__log', arguments: { text: 'hi' } });
    await waitFor(() => a.logs.length >= 2, 3000, 'log messages');
    expect(a.logs.map((l) => [l.level, l.logger, l.data])).toEqual([
      ['info', 'alpha/demo', 'alpha info: hi'],
      ['error', 'alpha/demo', 'alpha error: hi'],
    ]);
    expect(b.logs).toEqual([]);
  });

  it.each(['alpha', 'beta'])('relays progress in order to the caller only (%s)', async (server) => {
    const seenA: number[] = [];
    const seenB: number[] = [];
    const [ra, rb] = await Promise.all([
      a.client.callTool({ name: `${server}__count`, arguments: { n: 4 } }, undefined, { onprogress: (p) => void seenA.push(p.progress) }),
      b.client.callTool({ name: `${server}__count`, arguments: { n: 6 } }, undefined, { onprogress: (p) => void seenB.push(p.progress) }),
    ]);
    expect(textOf(ra)).toBe(`${server} counted to 4`);
    expect(textOf(rb)).toBe(`${server} counted to 6`);
    expect(seenA).toEqual([1, 2, 3, 4]);
    expect(seenB).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it.each(['alpha', 'beta'])('delivers every progress report before the result, even when they arrive together (%s)', async (server) => {
    for (let round = 0; round < 5; round++) {
      const seen: number[] = [];
      await a.client.callTool({ name: `${server}__count`, arguments: { n: 3, gapMs: 0 } }, undefined, { onprogress: (p) => void seen.push(p.progress) });
      expect(seen).toEqual([1, 2, 3]);
    }
  });

  it.each(['alpha', 'beta'])('relays sampling, elicitation and roots to the calling client (%s)', async (server) => {
    expect(textOf(await a.client.callTool({ name: `${server}__ask_llm`, arguments: { question: 'why?' } }))).toBe(`${server} heard: ann answers why?`);
    expect(textOf(await b.client.callTool({ name: `${server}__ask_llm`, arguments: { question: 'how?' } }))).toBe(`${server} heard: bob answers how?`);
    expect(textOf(await b.client.callTool({ name: `${server}__ask_user`, arguments: {} }))).toBe(`${server}: accept bob`);
    expect(textOf(await a.client.callTool({ name: `${server}__list_roots`, arguments: {} }))).toBe('file:///home/ann');
  });

  it('never hands one session the sampling request of another, even when their calls overlap', async () => {
    const results = await Promise.all([
      a.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'q1' } }),
      b.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'q2' } }),
      a.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'q3' } }),
    ]);
    const texts = results.map(textOf);
    // Each call is answered by its own client or refused; never by the other one.
    expect(texts[0]).toMatch(/^(alpha heard: ann answers q1|.*refused.*|.*in flight.*)$/s);
    expect(texts[1]).toMatch(/^(alpha heard: bob answers q2|.*refused.*|.*in flight.*)$/s);
    expect(texts[2]).toMatch(/^(alpha heard: ann answers q3|.*refused.*|.*in flight.*)$/s);
    expect(texts.join('\n')).not.toMatch(/bob answers q[13]|ann answers q2/);
  });

  it('attributes server-to-client requests exactly on Streamable HTTP, even when calls of several sessions overlap', async () => {
    for (let round = 0; round < 3; round++) {
      const texts = (
        await Promise.all([
          a.client.callTool({ name: 'beta__ask_llm', arguments: { question: 'q1' } }),
          b.client.callTool({ name: 'beta__ask_llm', arguments: { question: 'q2' } }),
          a.client.callTool({ name: 'beta__ask_user', arguments: {} }),
          b.client.callTool({ name: 'beta__ask_user', arguments: {} }),
        ])
      ).map(textOf);
      expect(texts).toEqual(['beta heard: ann answers q1', 'beta heard: bob answers q2', 'beta: accept ann', 'beta: accept bob']);
    }
  });

  it('tells the upstream when the client lacks a capability', async () => {
    const plain = await peer(gateway.url, 'plain', {} as never);
    try {
      const result = await plain.client.callTool({ name: 'beta__ask_llm', arguments: { question: 'x' } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('the client does not support sampling/createMessage');
    } finally {
      await plain.close();
    }
  });

  it('delivers resource updates to subscribed sessions only', async () => {
    await a.client.subscribeResource({ uri: 'demo://alpha/static' });
    await a.client.subscribeResource({ uri: 'conflux://beta/shared://readme' });
    expect(textOf(await b.client.callTool({ name: 'alpha__touch', arguments: { uri: 'demo://alpha/static' } }))).toBe('notified');
    expect(textOf(await b.client.callTool({ name: 'beta__touch', arguments: { uri: 'shared://readme' } }))).toBe('notified');
    await waitFor(() => a.updates.length >= 2, 3000, 'resource updates');
    expect(a.updates.sort()).toEqual(['conflux://beta/shared://readme', 'demo://alpha/static']);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.updates).toEqual([]);
    await a.client.unsubscribeResource({ uri: 'demo://alpha/static' });
    expect(textOf(await b.client.callTool({ name: 'alpha__touch', arguments: { uri: 'demo://alpha/static' } }))).toBe('not subscribed');
  });

  it('subscribes a 2025 upstream that came back to what its previous session was subscribed to', async () => {
    await a.client.subscribeResource({ uri: 'demo://alpha/static' });
    try {
      const upstream = () => gateway.conflux.upstreams.get('alpha');
      await b.client.callTool({ name: 'alpha__crash', arguments: {} });
      await waitFor(() => upstream()?.state !== 'ready', 15_000, 'alpha to go down');
      await waitFor(() => upstream()?.state === 'ready', 30_000, 'alpha to come back');
      // The new process was subscribed again just after it came up.
      const before = a.updates.length;
      await waitFor(async () => textOf(await b.client.callTool({ name: 'alpha__touch', arguments: { uri: 'demo://alpha/static' } })) === 'notified', 15_000, 'the new process to be subscribed');
      await waitFor(() => a.updates.length > before, 5000, 'the update');
      expect(a.updates.at(-1)).toBe('demo://alpha/static');
    } finally {
      await a.client.unsubscribeResource({ uri: 'demo://alpha/static' });
    }
    expect(textOf(await b.client.callTool({ name: 'alpha__touch', arguments: { uri: 'demo://alpha/static' } }))).toBe('not subscribed');
  });

  it('cancels the upstream work when the client cancels', async () => {
    const controller = new AbortController();
    const call = a.client.callTool({ name: 'alpha__work', arguments: {} }, undefined, { signal: controller.signal });
    await waitFor(async () => textOf(await b.client.callTool({ name: 'alpha__work_status', arguments: {} })) === 'running', 5000, 'work to start');
    controller.abort('changed my mind');
    await expect(call).rejects.toThrow();
    await waitFor(async () => textOf(await b.client.callTool({ name: 'alpha__work_status', arguments: {} })) === 'cancelled', 5000, 'the upstream to stop');
  });

  it('cancels the upstream work when the client disconnects mid-call', async () => {
    const sessionId = (a.client.transport as unknown as { sessionId: string }).sessionId;
    const controller = new AbortController();
    const response = await fetch(gateway.url, {
      method: 'POST',
      signal: controller.signal,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'w1', method: 'tools/call', params: { name: 'beta__work', arguments: {} } }),
    });
    expect(response.status).toBe(200);
    await waitFor(async () => textOf(await b.client.callTool({ name: 'beta__work_status', arguments: {} })) === 'running', 5000, 'work to start');
    controller.abort();
    await waitFor(async () => textOf(await b.client.callTool({ name: 'beta__work_status', arguments: {} })) === 'cancelled', 5000, 'the upstream to stop');
  });
});

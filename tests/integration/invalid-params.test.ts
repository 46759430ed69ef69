import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

/** One JSON-RPC message posted raw; the answer read from JSON or from the SSE event it comes in. */
async function post(url: string, sessionId: string | undefined, message: object): Promise<{ sessionId: string | null; answer: Record<string, unknown> | undefined }> {
  const response = await fetch(url, { method: 'POST', headers: { ...HEADERS, ...(sessionId ? { 'mcp-session-id': sessionId } : {}) }, body: JSON.stringify(message) });
  const text = await response.text();
  const data = /^data: (.*)$/m.exec(text)?.[1] ?? (text.startsWith('{') ? text : undefined);
  return { sessionId: response.headers.get('mcp-session-id'), answer: data ? (JSON.parse(data) as Record<string, unknown>) : undefined };
}

/** A raw session; with `roots` declared, as clients that take the session server's path for everything. */
async function openSession(url: string, capabilities: object): Promise<string> {
  const { sessionId } = await post(url, undefined, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities, clientInfo: { name: 'raw', version: '1' } },
  });
  await post(url, sessionId!, { jsonrpc: '2.0', method: 'notifications/initialized' });
  return sessionId!;
}

describe('params of the wrong type', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  const cases: [method: string, params: unknown, field: RegExp][] = [
    ['tools/list', { cursor: { page: 2 } }, /params\.cursor: .*string/],
    ['prompts/list', { cursor: 7 }, /params\.cursor: .*string/],
    ['resources/list', { cursor: [] }, /params\.cursor: .*string/],
    ['resources/templates/list', { cursor: true }, /params\.cursor: .*string/],
    ['resources/read', { uri: { href: 'demo://alpha/static' } }, /params\.uri: .*string/],
    ['resources/subscribe', { uri: 42 }, /params\.uri: .*string/],
    ['resources/unsubscribe', {}, /params\.uri: .*string/],
    ['prompts/get', { name: null }, /params\.name: .*string/],
    ['logging/setLevel', { level: 'loudest' }, /params\.level: .*"debug"/],
    ['completion/complete', { ref: 'alpha__greet', argument: { name: 'name', value: 'A' } }, /params\.ref: /],
    // Name and arguments fine, something else not: checked whole on every path.
    ['tools/call', { name: 'alpha__echo', arguments: { text: 'x' }, task: 'x' }, /params\.task: /],
  ];

  it.each([
    ['a client that declares nothing', {}],
    ['a client that declares roots', { roots: {} }],
  ])('answers -32602 naming the field, without a validator dump (%s)', async (_kind, capabilities) => {
    const sessionId = await openSession(gateway.url, capabilities);
    for (const [index, [method, params, field]] of cases.entries()) {
      const { answer } = await post(gateway.url, sessionId, { jsonrpc: '2.0', id: 100 + index, method, params });
      const error = answer?.error as { code: number; message: string } | undefined;
      expect(answer, method).toMatchObject({ jsonrpc: '2.0', id: 100 + index, error: { code: -32602 } });
      expect(error!.message, method).toContain(`Invalid params for ${method}: `);
      expect(error!.message, method).toMatch(field);
      // The validator's own output is a JSON array of issue objects.
      expect(error!.message, method).not.toMatch(/[[{]\s*"(code|expected|path)"/);
    }
  });

  it('still serves the same methods with params of the right type', async () => {
    const sessionId = await openSession(gateway.url, {});
    const read = await post(gateway.url, sessionId, { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'demo://alpha/static' } });
    expect(read.answer).toMatchObject({ result: { contents: [{ uri: 'demo://alpha/static', text: 'static text of alpha' }] } });
    const level = await post(gateway.url, sessionId, { jsonrpc: '2.0', id: 2, method: 'logging/setLevel', params: { level: 'debug' } });
    expect(level.answer).toMatchObject({ id: 2, result: {} });
    const prompt = await post(gateway.url, sessionId, { jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'alpha__greet', arguments: { name: 'Ada' } } });
    expect(prompt.answer).toMatchObject({ result: { messages: [{ content: { text: 'alpha says hello to Ada' } }] } });
  });
});

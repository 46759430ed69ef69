import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { stdioFixture, testConfig, waitFor } from '../helpers/gateway.js';
import { startLoggedGateway, type LoggedGateway } from '../helpers/logged-gateway.js';
import { MODERN_VERSION, modernEnvelope } from '../helpers/modern-envelope.js';

/**
 * A plain 2026-07-28 `tools/call` is run without the per-request SDK server; the same request
 * from a client that declared roots (which could be asked things mid-call) goes through that
 * server. From the outside the two must not differ: status, content type and body, byte for
 * byte, and the audit row.
 */

interface Sent {
  status: number;
  type: string | null;
  body: string;
  /** Where each call the request made ran: `sessionless`, or the per-request server. */
  paths: string[];
}

interface RequestOptions {
  capabilities?: Record<string, unknown>;
  /** More envelope keys. */
  envelope?: Record<string, unknown>;
  /** Headers over the standard ones. */
  headers?: Record<string, string | undefined>;
  id?: string | number;
  signal?: AbortSignal;
}

/** Blanks what differs between two runs of the same call (timings). */
const untimed = (row: Record<string, unknown>) => ({ ...row, at: '', durationMs: 0 });

describe('sessionless tool calls', () => {
  let gateway: LoggedGateway;
  let token: string;

  beforeAll(async () => {
    gateway = await startLoggedGateway(
      testConfig(
        { alpha: stdioFixture('alpha'), beta: stdioFixture('beta') },
        {
          auth: { jwt: { secret: JWT_SECRET } },
          access: {
            grants: [
              { user: 'sam@example.com', servers: ['alpha'], level: 'call' },
              { user: 'sam@example.com', servers: ['beta'], level: 'read' },
            ],
          },
          limits: { maxConcurrentCallsPerSession: 2 },
        },
      ),
    );
    token = await hs256Token({ sub: 'u-sam', email: 'sam@example.com' });
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
  });

  /** One raw 2026-07-28 `tools/call`, as the SDK client sends it unless `options` say otherwise. */
  const call = async (params: Record<string, unknown>, options: RequestOptions = {}): Promise<Sent> => {
    const before = gateway.lines.length;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': 'tools/call',
      'mcp-name': String(params.name),
      ...bearer(token),
    };
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value === undefined) delete headers[name];
      else headers[name] = value;
    }
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers,
      signal: options.signal,
      body: JSON.stringify({ jsonrpc: '2.0', id: options.id ?? 7, method: 'tools/call', params: { ...params, _meta: modernEnvelope(options.capabilities, options.envelope) } }),
    });
    const body = await response.text();
    const paths = gateway.lines.slice(before).flatMap((line) => (line.msg === 'tool call' ? [typeof line.path === 'string' ? line.path : 'per-request server'] : []));
    return { status: response.status, type: response.headers.get('content-type'), body, paths };
  };
  /** The same request on both paths: plain, then from a client that declared roots. */
  const both = async (params: Record<string, unknown>, options: RequestOptions = {}) => {
    const rows = gateway.auditRows().length;
    const fast = await call(params, options);
    const regular = await call(params, { ...options, capabilities: { ...options.capabilities, roots: {} } });
    const [fastRow, regularRow] = gateway.auditRows().slice(rows);
    return { fast, regular, audit: [fastRow, regularRow] };
  };
  const answerOf = (sent: Sent) => JSON.parse(sent.body) as { id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } };

  it('answers a plain call without the per-request server, and a client that declared roots through it', async () => {
    const { fast, regular } = await both({ name: 'alpha__echo', arguments: { text: 'hi' } });
    expect(fast.paths).toEqual(['sessionless']);
    expect(regular.paths).toEqual(['per-request server']);
    expect(answerOf(fast)).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: { content: [{ type: 'text', text: 'alpha: hi' }], resultType: 'complete', _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'conflux', version: expect.any(String) } } },
    });
  });

  it('gives the same answers, errors and audit rows as the per-request server', async () => {
    const cases: [string, Record<string, unknown>, number | undefined][] = [
      // A valid call, with a text result and with structured content (which the server answers from the call the fast path ran).
      ['alpha__echo', { text: 'there' }, undefined],
      ['alpha__add', { a: 2, b: 40 }, undefined],
      // The upstream's tool error, and its refusal of the arguments.
      ['alpha__fail', {}, undefined],
      ['alpha__echo', {}, undefined],
      // Unknown, and listed but not callable.
      ['no_such_tool', {}, -32602],
      ['beta__echo', { text: 'x' }, undefined],
      // An upstream asking the client mid-call: it declared nothing it could be asked.
      ['alpha__ask_llm', { question: 'why?' }, undefined],
    ];
    for (const [name, args, code] of cases) {
      const { fast, regular, audit } = await both({ name, arguments: args }, { id: `case-${name}` });
      expect(fast, name).toEqual({ ...regular, paths: ['sessionless'] });
      expect(regular.paths, name).toEqual(['per-request server']);
      expect(untimed(audit[0]!), name).toEqual(untimed(audit[1]!));
      if (code !== undefined) expect(answerOf(fast).error?.code, name).toBe(code);
    }
    const denied = await call({ name: 'beta__echo', arguments: { text: 'x' } });
    expect(answerOf(denied)).toMatchObject({ id: 7, error: { message: expect.stringContaining('may list "beta__echo" but not call it') } });
    expect(gateway.auditRows().at(-1)).toMatchObject({ target: 'beta__echo', status: 'denied' });
  });

  it('leaves what it cannot decide cheaply to the per-request server, refusals with the request id included', async () => {
    const echo = { name: 'alpha__echo', arguments: { text: 'x' } };
    const refusals: [string, Record<string, unknown>, RequestOptions, number, number][] = [
      ['bad envelope', echo, { envelope: { 'io.modelcontextprotocol/clientInfo': 5 } }, 400, -32602],
      ['Mcp-Name mismatch', echo, { headers: { 'mcp-name': 'alpha__other' } }, 400, -32020],
      ['Mcp-Name missing', echo, { headers: { 'mcp-name': undefined } }, 400, -32020],
      ['Mcp-Method missing', echo, { headers: { 'mcp-method': undefined } }, 400, -32020],
      ['version header missing', echo, { headers: { 'mcp-protocol-version': undefined } }, 400, -32020],
      ['version header mismatch', echo, { headers: { 'mcp-protocol-version': '2025-11-25' } }, 400, -32020],
      ['arguments not an object', { name: 'alpha__echo', arguments: ['x'] }, {}, 200, -32602],
    ];
    for (const [what, params, options, status, code] of refusals) {
      const { fast, regular } = await both(params, { ...options, id: what });
      expect(fast, what).toEqual(regular);
      expect(fast.paths, what).toEqual([]);
      expect(fast.status, what).toBe(status);
      expect(answerOf(fast), what).toMatchObject({ id: what, error: { code } });
    }
    // Calls that may stream messages ahead of their answer, or ask the client, take the server's path.
    const served: [string, RequestOptions][] = [
      ['a log level', { envelope: { 'io.modelcontextprotocol/logLevel': 'debug' } }],
      ['a progress token', { envelope: { progressToken: 'p1' } }],
      ['elicitation declared', { capabilities: { elicitation: {} } }],
      ['sampling declared', { capabilities: { sampling: {} } }],
    ];
    for (const [what, options] of served) {
      const sent = await call(echo, options);
      expect(sent.paths, what).toEqual(['per-request server']);
      expect(answerOf(sent), what).toMatchObject({ result: { content: [{ type: 'text', text: 'alpha: x' }] } });
    }
    // A Base64-encoded Mcp-Name is decoded by the SDK.
    const encoded = await call(echo, { headers: { 'mcp-name': `=?base64?${Buffer.from('alpha__echo').toString('base64')}?=` } });
    expect(encoded.paths).toEqual(['per-request server']);
    expect(answerOf(encoded)).toMatchObject({ result: { content: [{ type: 'text', text: 'alpha: x' }] } });
  });

  it("counts its calls against the caller's slots, as the per-request server does", async () => {
    const { tracker } = gateway.conflux.toolCalls;
    const controllers = [new AbortController(), new AbortController()];
    const working = controllers.map((controller) => call({ name: 'alpha__work', arguments: {} }, { signal: controller.signal }).catch(() => undefined));
    try {
      await waitFor(() => tracker.size === 2, 10_000, 'both calls to reach the upstream');
      const { fast, regular } = await both({ name: 'alpha__echo', arguments: { text: 'one too many' } }, { id: 'third' });
      // Refused before any call runs: neither path logs one.
      expect(fast).toEqual({ ...regular, paths: [] });
      expect(answerOf(fast)).toMatchObject({ id: 'third', error: { code: -32000, message: expect.stringContaining('too many concurrent tool calls') } });
    } finally {
      for (const controller of controllers) controller.abort();
      await Promise.all(working);
    }
    await waitFor(() => tracker.size === 0, 10_000, 'the calls to end');
    expect(answerOf(await call({ name: 'alpha__echo', arguments: { text: 'again' } })).result?.content).toEqual([{ type: 'text', text: 'alpha: again' }]);
  });

  it('cancels the upstream work when the client goes away mid-call', async () => {
    const status = async () => (answerOf(await call({ name: 'alpha__work_status', arguments: {} })).result?.content as { text: string }[])[0]!.text;
    const controller = new AbortController();
    const working = call({ name: 'alpha__work', arguments: {} }, { signal: controller.signal });
    working.catch(() => {});
    await waitFor(async () => (await status()) === 'running', 10_000, 'work to start');
    controller.abort();
    await waitFor(async () => (await status()) === 'cancelled', 10_000, 'the upstream to stop');
    const worked = gateway.lines.filter((line) => line.msg === 'tool call' && line.tool === 'alpha__work').at(-1);
    expect(worked).toMatchObject({ path: 'sessionless', status: 'error' });
  });
});

import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { LoggingMessageNotificationSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { sdkClient, startGateway, stdioFixture, testConfig, textOf, waitFor, type ClientSession, type RunningGateway } from '../helpers/gateway.js';
import { postInSession } from '../helpers/session-post.js';

/**
 * A `tools/call` from a client that declared no sampling, elicitation or roots is answered
 * without the session's SDK server; one from a client that declared roots takes the regular
 * path. Both must look the same from the outside.
 */
interface Peer extends ClientSession<Client> {
  /** Every message the client received, in order: `log:<data>` or `result:<id>`. */
  seen: string[];
}

/** A client that declared roots (`regular`), or nothing (`plain`). */
async function peer(url: string, roots: boolean): Promise<Peer> {
  const session = await sdkClient(url, { name: roots ? 'regular' : 'plain', roots: roots ? [] : undefined });
  const seen: string[] = [];
  session.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void seen.push(`log:${String(n.params.data)}`));
  return { ...session, seen };
}

/** A call's result or error, with timings (a broadcast reports its own) blanked so two calls compare. */
async function outcome(promise: Promise<unknown>): Promise<unknown> {
  try {
    return { result: JSON.parse(JSON.stringify(await promise), (key, value: unknown) => (key === 'durationMs' ? 0 : value)) };
  } catch (error) {
    return error instanceof McpError ? { code: error.code, message: error.message } : { thrown: String(error) };
  }
}

describe('plain tool calls', () => {
  let http: RunningUpstream;
  let gateway: RunningGateway;
  let plain: Peer;
  let regular: Peer;

  beforeAll(async () => {
    http = await startStreamableUpstream('beta');
    gateway = await startGateway(
      testConfig({ alpha: stdioFixture('alpha'), beta: { url: http.url } }, { limits: { maxConcurrentCallsPerSession: 2 } }),
    );
    plain = await peer(gateway.url, false);
    regular = await peer(gateway.url, true);
  });
  afterAll(async () => {
    await plain?.close();
    await regular?.close();
    await gateway?.stop();
    await http?.close();
  });

  it('gives the same answers as the regular path, results and errors alike', async () => {
    const calls: [string, Record<string, unknown>][] = [
      ['alpha__echo', { text: 'hi' }],
      ['beta__echo', { text: 'there' }],
      ['alpha__add', { a: 2, b: 40 }],
      ['beta__fail', {}],
      ['alpha__add', { a: 'two' }],
      ['no_such_tool', {}],
      ['broadcast__echo', { text: 'all' }],
      ['conflux__search_tools', { query: 'add numbers', limit: 2 }],
      ['conflux__search_tools', {}],
    ];
    for (const [name, args] of calls) {
      const viaPlain = await outcome(plain.client.callTool({ name, arguments: args }));
      const viaRegular = await outcome(regular.client.callTool({ name, arguments: args }));
      expect(viaPlain, name).toEqual(viaRegular);
    }
    expect(await outcome(plain.client.callTool({ name: 'alpha__add', arguments: { a: 2, b: 40 } }))).toEqual({
      result: { content: [{ type: 'text', text: '42' }], structuredContent: { sum: 42 } },
    });
    expect(await outcome(plain.client.callTool({ name: 'no_such_tool', arguments: {} }))).toMatchObject({ code: -32602 });
  });

  it('sends the log messages about a call before its answer, at the level the session asked for', async () => {
    await plain.client.setLoggingLevel('info');
    plain.seen.length = 0;
    const result = await plain.client.callTool({ name: 'beta__log', arguments: { text: 'x' } });
    plain.seen.push('result');
    expect(textOf(result)).toBe('logged');
    expect(plain.seen).toEqual(['log:beta info: x', 'log:beta error: x', 'result']);
  });

  it('answers on the wire as the transport does: one SSE event per message, with the session id', async () => {
    const sessionId = plain.sessionId!;
    const response = await postInSession(gateway.url, sessionId, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: 'wire' } } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('mcp-session-id')).toBe(sessionId);
    const events = (await response.text()).split('\n\n').filter(Boolean);
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.replace(/^event: message\ndata: /, ''))).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: { content: [{ type: 'text', text: 'alpha: wire' }] },
    });
  });

  it('leaves requests the transport would refuse to the transport', async () => {
    const sessionId = plain.sessionId!;
    const call = { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: 'x' } } };
    expect((await postInSession(gateway.url, sessionId, call, { headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await postInSession(gateway.url, sessionId, call, { headers: { accept: 'application/json' } })).status).toBe(406);
    expect((await postInSession(gateway.url, sessionId, call, { headers: { 'mcp-protocol-version': '1999-01-01' } })).status).toBe(400);
    const notJsonRpc = await postInSession(gateway.url, sessionId, { ...call, jsonrpc: '1.0' });
    expect(notJsonRpc.status).toBe(400);
    // Malformed params are refused as such (-32602), naming the field, whatever the client declared.
    const cases: [unknown, RegExp][] = [
      [{ arguments: {} }, /params\.name: .*string/],
      [{ name: 'alpha__echo', arguments: ['x'] }, /params\.arguments: .*record/],
      [{ name: 7 }, /params\.name: .*string/],
      [undefined, /params: /],
    ];
    for (const [params, problem] of cases) {
      for (const peerSession of [sessionId, regular.sessionId!]) {
        const invalid = await postInSession(gateway.url, peerSession, { ...call, params });
        const [, data] = /data: ({.*)/.exec(await invalid.text()) ?? [];
        const answer = JSON.parse(data ?? '{}') as { id?: unknown; error?: { code: number; message: string } };
        expect(answer, JSON.stringify(params)).toMatchObject({ id: 8, error: { code: -32602 } });
        expect(answer.error?.message, JSON.stringify(params)).toMatch(problem);
      }
    }
  });

  it('refuses calls over the per-session limit as the regular path does', async () => {
    // Calls that work until cancelled hold both slots of each session for as long as the test
    // needs them; the third call is sent once they do (sent together, it could arrive first).
    const callsIn = (peer: Peer) => gateway.conflux.sessions.get(peer.sessionId)?.activeCalls;
    const release = new AbortController();
    const holding = [plain, regular].flatMap((peer) => [0, 1].map(() => outcome(peer.client.callTool({ name: 'alpha__work', arguments: {} }, undefined, { signal: release.signal }))));
    try {
      await waitFor(() => callsIn(plain) === 2 && callsIn(regular) === 2, 10_000, 'both sessions to hold two calls');
      const third = outcome(plain.client.callTool({ name: 'alpha__echo', arguments: { text: 'one too many' } }));
      const regularThird = outcome(regular.client.callTool({ name: 'alpha__echo', arguments: { text: 'one too many' } }));
      expect(await third).toEqual(await regularThird);
      expect(await third).toMatchObject({ code: -32000, message: expect.stringContaining('too many concurrent tool calls') });
    } finally {
      // Released whatever happened above, so that a failure here leaves no slot held for the tests after it.
      release.abort('released');
    }
    // The SDK client ends an aborted call itself (-32001, with the reason) and tells the gateway.
    expect(await Promise.all(holding)).toEqual(Array(4).fill({ code: -32001, message: 'MCP error -32001: released' }));
    await waitFor(() => callsIn(plain) === 0 && callsIn(regular) === 0, 10_000, 'the cancelled calls to give their slots back');
    expect(textOf(await plain.client.callTool({ name: 'alpha__echo', arguments: { text: 'again' } }))).toBe('alpha: again');
  });

  it('cancels the upstream work on notifications/cancelled', async () => {
    const controller = new AbortController();
    const call = plain.client.callTool({ name: 'alpha__work', arguments: {} }, undefined, { signal: controller.signal });
    await waitFor(async () => textOf(await regular.client.callTool({ name: 'alpha__work_status', arguments: {} })) === 'running', 5000, 'work to start');
    controller.abort('changed my mind');
    await expect(call).rejects.toThrow();
    await waitFor(async () => textOf(await regular.client.callTool({ name: 'alpha__work_status', arguments: {} })) === 'cancelled', 5000, 'the upstream to stop');
  });

  it('cancels the upstream work when the client goes away mid-call', async () => {
    const controller = new AbortController();
    const response = postInSession(gateway.url, plain.sessionId!, { jsonrpc: '2.0', id: 'w1', method: 'tools/call', params: { name: 'beta__work', arguments: {} } }, { signal: controller.signal });
    response.catch(() => {});
    await waitFor(async () => textOf(await regular.client.callTool({ name: 'beta__work_status', arguments: {} })) === 'running', 5000, 'work to start');
    controller.abort();
    await waitFor(async () => textOf(await regular.client.callTool({ name: 'beta__work_status', arguments: {} })) === 'cancelled', 5000, 'the upstream to stop');
    expect(textOf(await plain.client.callTool({ name: 'beta__echo', arguments: { text: 'still here' } }))).toBe('beta: still here');
  });
});

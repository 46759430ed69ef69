import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallsInFlight } from '../../src/gateway/calls-in-flight.js';
import { sdkClient, stdioFixture, testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { startLoggedGateway, type LoggedGateway } from '../helpers/logged-gateway.js';
import { postInSession } from '../helpers/session-post.js';

describe('calls in flight', () => {
  const session = () => ({ lifetime: new AbortController() });

  it('holds one call per id and session, and releases only its own', () => {
    const calls = new CallsInFlight();
    const a = session();
    const b = session();
    const first = new AbortController();
    const release = calls.claim(a, 7, first);
    expect(release).toBeTypeOf('function');
    // The same id in the same session is refused; in another session it is another call.
    expect(calls.claim(a, 7, new AbortController())).toBeUndefined();
    const other = new AbortController();
    const releaseOther = calls.claim(b, 7, other);
    expect(releaseOther).toBeTypeOf('function');
    expect(calls.claim(a, '7', new AbortController())).toBeTypeOf('function');

    expect(calls.cancel(a, 7, 'enough')).toBe(true);
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toBe('enough');
    expect(other.signal.aborted).toBe(false);

    release!();
    release!();
    expect(calls.cancel(a, 7, 'again')).toBe(false);
    releaseOther!();
    expect(calls.cancel(b, 7, 'late')).toBe(false);
    expect(other.signal.aborted).toBe(false);
    // Once released, the id may be used again.
    expect(calls.claim(a, 7, new AbortController())).toBeTypeOf('function');
  });

  it('aborts every call of a session when the session closes, with its reason', () => {
    const calls = new CallsInFlight();
    const closing = session();
    const staying = session();
    const controllers = [new AbortController(), new AbortController()];
    calls.claim(closing, 1, controllers[0]!);
    calls.claim(closing, 2, controllers[1]!);
    const other = new AbortController();
    calls.claim(staying, 1, other);
    const reason = new Error('session closed');
    closing.lifetime.abort(reason);
    expect(controllers.map((c) => c.signal.reason)).toEqual([reason, reason]);
    expect(other.signal.aborted).toBe(false);
  });
});

/** A client that declared roots (`regular`), or nothing (`plain`), and its session id. */
async function peer(url: string, roots: boolean) {
  const session = await sdkClient(url, { name: roots ? 'regular' : 'plain', roots: roots ? [] : undefined });
  return { ...session, sessionId: session.sessionId! };
}

type Peer = Awaited<ReturnType<typeof peer>>;

/** The JSON-RPC response in an SSE answer: its last event. */
async function answerOf(response: Response | Promise<Response>): Promise<unknown> {
  const events = [...(await (await response).text()).matchAll(/^data: (.*)$/gm)];
  return JSON.parse(events.at(-1)![1]!);
}

const toolsCall = (id: string | number, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('plain tool calls', () => {
  let gateway: LoggedGateway;
  let plain: Peer;
  let plainToo: Peer;
  let regular: Peer;

  beforeAll(async () => {
    gateway = await startLoggedGateway(testConfig({ alpha: stdioFixture('alpha') }));
    plain = await peer(gateway.url, false);
    plainToo = await peer(gateway.url, false);
    regular = await peer(gateway.url, true);
  });
  afterAll(async () => {
    await plain?.close();
    await plainToo?.close();
    await regular?.close();
    await gateway?.stop();
  });

  /** The `path` of the debug line logged for each call to `tool` in `session`. */
  const pathsOf = (session: string, tool: string) => gateway.lines.filter((line) => line.msg === 'tool call' && line.session === session && line.tool === tool).map((line) => line.path ?? 'session server');

  it("answers a plain client's call without the session server, and a client that declared roots through it", async () => {
    expect(textOf(await plain.client.callTool({ name: 'alpha__echo', arguments: { text: 'fast' } }))).toBe('alpha: fast');
    expect(textOf(await regular.client.callTool({ name: 'alpha__echo', arguments: { text: 'regular' } }))).toBe('alpha: regular');
    expect(pathsOf(plain.sessionId, 'alpha__echo')).toEqual(['plain']);
    expect(pathsOf(regular.sessionId, 'alpha__echo')).toEqual(['session server']);
  });

  it('refuses a second call under the id of one in flight in the session, which stays cancellable', async () => {
    const working = postInSession(gateway.url, plain.sessionId, toolsCall('dup', 'alpha__work'));
    // Read below; a failed assertion before then must not leave it rejecting unheard.
    working.catch(() => {});
    const status = async () => textOf(await regular.client.callTool({ name: 'alpha__work_status', arguments: {} }));
    await waitFor(async () => (await status()) === 'running', 10_000, 'work to start');

    expect(await answerOf(postInSession(gateway.url, plain.sessionId, toolsCall('dup', 'alpha__echo', { text: 'twin' })))).toEqual({
      jsonrpc: '2.0',
      id: 'dup',
      error: { code: -32600, message: 'Request id "dup" is already in use by a request in flight in this session' },
    });
    // The same id in another session is another request.
    expect(await answerOf(postInSession(gateway.url, plainToo.sessionId, toolsCall('dup', 'alpha__echo', { text: 'elsewhere' })))).toEqual({
      jsonrpc: '2.0',
      id: 'dup',
      result: { content: [{ type: 'text', text: 'alpha: elsewhere' }] },
    });
    expect(await status()).toBe('running');

    const cancelled = await postInSession(gateway.url, plain.sessionId, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'dup', reason: 'enough' } });
    expect(cancelled.status).toBe(202);
    await waitFor(async () => (await status()) === 'cancelled', 10_000, 'the upstream to stop');
    expect(await answerOf(working)).toEqual({ jsonrpc: '2.0', id: 'dup', error: { code: -32001, message: 'Request cancelled: enough' } });
    // Answered, the id is free again.
    expect(await answerOf(postInSession(gateway.url, plain.sessionId, toolsCall('dup', 'alpha__echo', { text: 'again' })))).toEqual({
      jsonrpc: '2.0',
      id: 'dup',
      result: { content: [{ type: 'text', text: 'alpha: again' }] },
    });
    expect(pathsOf(plain.sessionId, 'alpha__work')).toEqual(['plain']);
  });
});

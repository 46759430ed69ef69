import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMisbehavingUpstream, type MisbehavingUpstream } from '../fixtures/misbehaving-http-upstream.js';
import { connectClient, startGateway, testConfig, textOf, waitFor, type ConnectedClient, type RunningGateway } from '../helpers/gateway.js';

/**
 * A Streamable HTTP upstream that breaks off its answers, seen from a client of the gateway: the
 * call fails with an error that says what happened as soon as it happens, not when the call's
 * timeout (ten minutes here) runs out.
 */
describe('a Streamable HTTP upstream that breaks off its answers', () => {
  let upstream: MisbehavingUpstream;
  let gateway: RunningGateway;
  let connected: ConnectedClient;

  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    gateway = await startGateway(testConfig({ flaky: { transport: 'streamable-http', url: upstream.url, timeout: 600 } }));
    connected = await connectClient(gateway.url);
  });

  afterAll(async () => {
    await connected?.close();
    await gateway?.stop();
    await upstream?.close();
  });

  const call = (tool: string, options?: { signal?: AbortSignal }) => connected.client.callTool({ name: `flaky__${tool}`, arguments: {} }, undefined, options);

  it('answers a call whose answer stream ended without the answer with a lost connection', async () => {
    const result = await call('vanish');
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('upstream "flaky" lost its connection during tools/call: the response stream ended without an answer');
    expect(textOf(await call('echo'))).toBe('echoed');
  });

  it('says why a stream the upstream asked to be resumed could not be', async () => {
    const result = await call('poll-gone');
    expect(textOf(result)).toBe('upstream "flaky" lost its connection during tools/call: the response stream ended without an answer, and resuming it failed: HTTP 400');
  });

  it('cancels the upstream request of a call its client gives up, and closes its stream', async () => {
    const before = upstream.cancelled.length;
    const controller = new AbortController();
    const pending = call('slow', { signal: controller.signal });
    await waitFor(() => upstream.called.includes('slow'), 30_000, 'the call to reach the upstream');
    controller.abort(new Error('not needed any more'));
    await expect(pending).rejects.toThrow('not needed any more');
    await waitFor(() => upstream.abandoned.includes('slow'), 30_000, 'the upstream stream to be closed');
    expect(upstream.cancelled.length).toBe(before + 1);
  });
});

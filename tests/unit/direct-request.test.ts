import { createServer } from 'node:http';
import { SdkError, SdkErrorCode, type Client } from '@modelcontextprotocol/client';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { directTransport, sendDirect } from '../../src/upstream/direct-request.js';
import { HttpClientTransport } from '../../src/upstream/http-client-transport.js';
import { OwnerChannel } from '../../src/upstream/owner-channel.js';
import { listening, sdkSessions, type RunningUpstream } from '../fixtures/http-servers.js';
import { startResumableUpstream, type ResumableUpstream } from '../fixtures/misbehaving-http-upstream.js';
import { waitFor } from '../helpers/gateway.js';
import { connectTransportClient, misbehavingUpstreamWithClient } from '../helpers/transport-client.js';

/**
 * A request sent past the SDK client must come out as the client's own would: the same answer
 * or the same failure, the same cancellation upstream, the same sequence of ids.
 */

const AnyResult = z.object({}).loose();

/** A client on the gateway's transport, with the owner channel that tells whose call a message belongs to. */
async function connect(url: string): Promise<{ client: Client; transport: HttpClientTransport; owners: OwnerChannel }> {
  const owners = new OwnerChannel();
  return { ...(await connectTransportClient(url, { name: 'direct-request-test', owners })), owners };
}

const viaClient = (client: Client, name: string, options: { signal?: AbortSignal; timeout?: number } = {}) =>
  client.request({ method: 'tools/call', params: { name, arguments: {} } }, AnyResult, { timeout: 60_000, ...options });

const direct = (client: Client, name: string, options: { signal?: AbortSignal; timeout?: number; owner?: unknown } = {}) =>
  sendDirect(client, directTransport(client, false)!, 'tools/call', { name, arguments: {} }, { timeout: 60_000, owner: undefined, ...options });

/** What a failure says, for comparing two. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'no failure',
    (error: Error & { code?: unknown }) => ({ type: error.constructor.name, name: error.name, message: error.message, code: error.code }),
  );

const count = (list: readonly unknown[], item: unknown) => list.filter((entry) => entry === item).length;

describe('a request sent past the SDK client, against an upstream that breaks the protocol', () => {
  const suite = misbehavingUpstreamWithClient(connect);

  it('is offered only on a 2025 session of the HTTP transport', () => {
    expect(directTransport(suite.client, false)).toBeInstanceOf(HttpClientTransport);
    expect(directTransport(suite.client, true)).toBeUndefined();
  });

  it('gets the answer the client gets, numbered in the client’s own sequence', async () => {
    expect(await direct(suite.client, 'echo')).toEqual(await viaClient(suite.client, 'echo'));
    const before = suite.upstream.cancelled.length;
    // Each way takes the next number: two calls cancelled one after the other name consecutive ids.
    for (const send of [viaClient, direct]) {
      const calledBefore = count(suite.upstream.called, 'slow');
      const controller = new AbortController();
      const pending = send(suite.client, 'slow', { signal: controller.signal }).catch(() => undefined);
      await waitFor(() => count(suite.upstream.called, 'slow') === calledBefore + 1, 30_000, 'the call to arrive');
      controller.abort(new Error('enough'));
      await pending;
    }
    await waitFor(() => suite.upstream.cancelled.length === before + 2, 30_000, 'both cancellations');
    const [first, second] = suite.upstream.cancelled.slice(before) as number[];
    expect(typeof first).toBe('number');
    expect(second).toBe(first! + 1);
  });

  it('fails as the client fails, for an answer stream that ends without the answer, an empty body, an event too large, a stream that cannot be resumed', async () => {
    for (const tool of ['vanish', 'empty', 'endless', 'poll-gone']) {
      const expected = await failureOf(viaClient(suite.client, tool));
      expect(expected, tool).not.toBe('no failure');
      expect(await failureOf(direct(suite.client, tool)), tool).toEqual(expected);
    }
  });

  it('gets the answer the upstream sends on its GET stream after accepting the request with 202, as the client does', async () => {
    // Well within the call's timeout, were it waiting for nothing.
    const timeout = 20_000;
    const expected = await viaClient(suite.client, 'deferred', { timeout });
    expect(expected).toEqual({ content: [{ type: 'text', text: 'answered on the GET stream' }] });
    expect(await failureOf(direct(suite.client, 'deferred', { timeout }))).toBe('no failure');
    expect(await direct(suite.client, 'deferred', { timeout })).toEqual(expected);
  });

  it('fails on an error answer with the ProtocolError the client makes of it', async () => {
    const expected = await failureOf(suite.client.request({ method: 'no/such-method' }, AnyResult));
    expect(expected).toMatchObject({ type: 'ProtocolError', code: -32601 });
    expect(await failureOf(sendDirect(suite.client, directTransport(suite.client, false)!, 'no/such-method', undefined, { timeout: 60_000, owner: undefined }))).toEqual(expected);
  });

  it('given up by its caller, is cancelled upstream, its stream closed, and fails with the caller’s reason as the client fails', async () => {
    const outcomes = [];
    for (const send of [viaClient, direct]) {
      const cancelledBefore = suite.upstream.cancelled.length;
      const abandonedBefore = count(suite.upstream.abandoned, 'slow');
      const controller = new AbortController();
      const pending = failureOf(send(suite.client, 'slow', { signal: controller.signal }));
      await waitFor(() => count(suite.upstream.called, 'slow') > abandonedBefore, 30_000, 'the call to arrive');
      controller.abort(new Error('the caller went away'));
      outcomes.push(await pending);
      await waitFor(() => count(suite.upstream.abandoned, 'slow') === abandonedBefore + 1, 30_000, 'the slow stream to be closed');
      expect(suite.upstream.cancelled.length).toBe(cancelledBefore + 1);
    }
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[1]).toMatchObject({ type: 'SdkError', code: SdkErrorCode.RequestTimeout, message: 'Error: the caller went away' });
  });

  it('out of time, is cancelled upstream and fails as timed out, as the client fails', async () => {
    const outcomes = [];
    for (const send of [viaClient, direct]) {
      const cancelledBefore = suite.upstream.cancelled.length;
      outcomes.push(await failureOf(send(suite.client, 'slow', { timeout: 200 })));
      await waitFor(() => suite.upstream.cancelled.length === cancelledBefore + 1, 30_000, 'the cancellation');
    }
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[1]).toMatchObject({ type: 'SdkError', code: SdkErrorCode.RequestTimeout, message: 'Request timed out' });
  });

  it('fails at once for a signal already aborted, sending nothing', async () => {
    const calls = suite.upstream.called.length;
    const aborted = AbortSignal.abort(new SdkError(SdkErrorCode.RequestTimeout, 'too late'));
    expect(await failureOf(direct(suite.client, 'echo', { signal: aborted }))).toEqual(await failureOf(viaClient(suite.client, 'echo', { signal: aborted })));
    expect(suite.upstream.called.length).toBe(calls);
  });

  it('in flight when the transport closes, fails with ConnectionClosed, as the client’s requests do', async () => {
    const outcomes = [];
    for (const send of [viaClient, direct]) {
      const other = await connect(suite.upstream.url);
      const calledBefore = count(suite.upstream.called, 'slow');
      const pending = failureOf(send(other.client, 'slow'));
      await waitFor(() => count(suite.upstream.called, 'slow') === calledBefore + 1, 30_000, 'the call to arrive');
      await other.transport.close();
      outcomes.push(await pending);
    }
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[1]).toMatchObject({ code: SdkErrorCode.ConnectionClosed });
  });
});

describe('a request sent past the SDK client, against the SDK’s own server', () => {
  let resumable: ResumableUpstream;
  let logging: RunningUpstream;

  beforeAll(async () => {
    resumable = await startResumableUpstream();
    // `note` logs about its call (on the call's own answer stream) before answering.
    const sessions = sdkSessions(() => {
      const server = new McpServer({ name: 'logging', version: '1.0.0' }, { capabilities: { logging: {} } });
      server.registerTool('note', { description: 'Logs, then answers' }, async (extra) => {
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'noted' } });
        return { content: [{ type: 'text', text: 'done' }] };
      });
      return server;
    });
    logging = await listening(createServer((req, res) => void sessions.handle(req, res)), '/mcp', () => sessions.opened, () => sessions.close());
  });

  afterAll(async () => {
    await resumable?.close();
    await logging?.close();
  });

  it('gets an answer that comes on a resumed stream', async () => {
    const { client } = await connect(resumable.url);
    try {
      expect(await direct(client, 'poll')).toEqual(await viaClient(client, 'poll'));
    } finally {
      await client.close();
    }
  });

  it('leaves what comes before the answer on its stream to the client, delivered as its owner’s, and settles after it', async () => {
    const { client, owners } = await connect(logging.url);
    const seen: unknown[] = [];
    client.setNotificationHandler('notifications/message', (notification) => void seen.push([notification.params.data, owners.delivering]));
    try {
      const result = await direct(client, 'note', { owner: 'the call of client 3' });
      expect(seen).toEqual([['noted', 'the call of client 3']]);
      expect(result).toEqual({ content: [{ type: 'text', text: 'done' }] });
    } finally {
      await client.close();
    }
  });
});

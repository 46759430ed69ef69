import { SdkErrorCode, type Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startResumableUpstream, type ResumableUpstream } from '../fixtures/misbehaving-http-upstream.js';
import { waitFor } from '../helpers/gateway.js';
import { connectTransportClient, misbehavingUpstreamWithClient } from '../helpers/transport-client.js';

const connect = (url: string) => connectTransportClient(url, { name: 'transport-test' });

const call = (client: Client, name: string, options?: { signal?: AbortSignal }) => client.callTool({ name, arguments: {} }, options);

const count = (list: readonly string[], item: string) => list.filter((entry) => entry === item).length;

describe('the Streamable HTTP client transport against an upstream that breaks the protocol', () => {
  const suite = misbehavingUpstreamWithClient(connect);

  it('fails a request whose answer stream ends without the answer, at once, and goes on serving', async () => {
    await expect(call(suite.client, 'vanish')).rejects.toMatchObject({ name: 'UnansweredRequestError', message: 'the response stream ended without an answer' });
    expect(await call(suite.client, 'echo')).toEqual({ content: [{ type: 'text', text: 'echoed' }] });
  });

  it('fails a request answered with an empty JSON body', async () => {
    await expect(call(suite.client, 'empty')).rejects.toMatchObject({ name: 'UnansweredRequestError', message: 'the response (HTTP 200) was empty' });
  });

  it('fails a request whose SSE event passes the message limit, and closes that stream', async () => {
    await expect(call(suite.client, 'endless')).rejects.toMatchObject({
      code: SdkErrorCode.ClientHttpUnexpectedContent,
      message: 'an SSE event larger than 64 KiB, the limit for one message',
    });
    await waitFor(() => suite.upstream.abandoned.includes('endless'), 30_000, 'the endless stream to be closed');
    expect(await call(suite.client, 'echo')).toEqual({ content: [{ type: 'text', text: 'echoed' }] });
  });

  it('on a 2025 connection, a request given up is cancelled upstream and then its stream closed', async () => {
    const before = suite.upstream.cancelled.length;
    const controller = new AbortController();
    const pending = call(suite.client, 'slow', { signal: controller.signal });
    await waitFor(() => count(suite.upstream.called, 'slow') === 1, 30_000, 'the call to arrive');
    controller.abort(new Error('the caller went away'));
    await expect(pending).rejects.toThrow('the caller went away');
    await waitFor(() => count(suite.upstream.abandoned, 'slow') === 1, 30_000, 'the slow stream to be closed');
    expect(suite.upstream.cancelled.length).toBe(before + 1);
    expect(typeof suite.upstream.cancelled.at(-1)).toBe('number');
  });

  it('gives up a request whose stream cannot be resumed from the event id it gave, saying why', async () => {
    await expect(call(suite.client, 'poll-gone')).rejects.toMatchObject({
      name: 'UnansweredRequestError',
      message: 'the response stream ended without an answer, and resuming it failed: HTTP 400',
    });
    expect(suite.upstream.resumedFrom).toEqual(['gone-1']);
  });

  it('closes the streams of the requests in flight when it closes', async () => {
    const other = await connect(suite.upstream.url);
    const calledBefore = count(suite.upstream.called, 'slow');
    const abandonedBefore = count(suite.upstream.abandoned, 'slow');
    const settled = call(other.client, 'slow').then(
      () => undefined,
      (error: { code?: unknown }) => error.code,
    );
    await waitFor(() => count(suite.upstream.called, 'slow') === calledBefore + 1, 30_000, 'the call to arrive');
    await other.transport.close();
    await waitFor(() => count(suite.upstream.abandoned, 'slow') === abandonedBefore + 1, 30_000, 'the stream to be closed');
    expect(await settled).toBe(SdkErrorCode.ConnectionClosed);
  });
});

describe('the Streamable HTTP client transport against a server that closes its streams to be resumed (2025-11-25)', () => {
  let upstream: ResumableUpstream;

  beforeAll(async () => {
    upstream = await startResumableUpstream();
  });

  afterAll(async () => {
    await upstream?.close();
  });

  it('resumes an answer stream with Last-Event-ID and delivers the answer', async () => {
    const { client } = await connect(upstream.url);
    try {
      expect(await call(client, 'poll')).toMatchObject({ content: [{ type: 'text', text: 'answered after a poll' }] });
    } finally {
      await client.close();
    }
  });

  it('reopens the GET stream from its last event id, so what was sent meanwhile still arrives', async () => {
    const { client } = await connect(upstream.url);
    const logged: unknown[] = [];
    client.setNotificationHandler('notifications/message', (notification) => void logged.push(notification.params.data));
    try {
      // Logged before the GET stream is open, a message is never sent: wait until one arrives.
      await waitFor(async () => (await call(client, 'hello'), logged.includes('hello')), 30_000, 'the GET stream to open');
      expect(await call(client, 'relay')).toMatchObject({ content: [{ type: 'text', text: 'relayed' }] });
      await waitFor(() => logged.filter((data) => data !== 'hello').length === 2, 30_000, 'both log messages');
      expect(logged.filter((data) => data !== 'hello')).toEqual(['before', 'after']);
    } finally {
      await client.close();
    }
  });
});

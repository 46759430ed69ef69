import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Client, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { UpstreamConnectError } from '../../src/upstream/errors.js';
import { openClient, type OpenedClient } from '../../src/upstream/open-transport.js';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { listening, type RunningUpstream } from '../fixtures/http-servers.js';
import { readBody } from '../fixtures/web-bridge.js';
import { testConfig } from '../helpers/gateway.js';

/*
 * The connect timeouts of a legacy HTTP+SSE upstream: the wait for its `endpoint` event has a
 * deadline of its own, and the initialize sent after it has the connect timeout of its own.
 * Real SDK server transport on a loopback port; the clock that times the attempt is a fake one
 * where the test moves it.
 */

/** Resolved by whoever holds it: lets the test say when the server goes on. */
class Gate {
  release!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
}

/** Resolved once, when the server gets that far. */
class Reached {
  reach!: () => void;
  readonly reached = new Promise<void>((resolve) => (this.reach = resolve));
}

interface HeldSseUpstream extends RunningUpstream {
  /** The stream's GET has arrived (its answer and `endpoint` event wait for `endpoint`). */
  readonly streamRequested: Promise<void>;
  /** The initialize has arrived (its answer waits for `initialize`). */
  readonly initializeReceived: Promise<void>;
  readonly endpoint: Gate;
  readonly initialize: Gate;
}

/**
 * A legacy SSE server of SDK parts whose stream (with its `endpoint` event) is answered once the
 * test opens `endpoint`, and whose answer to initialize is sent once it opens `initialize`.
 */
function startHeldSseUpstream(): Promise<HeldSseUpstream> {
  const streamRequested = new Reached();
  const initializeReceived = new Reached();
  const endpoint = new Gate();
  const initialize = new Gate();
  const transports = new Map<string, SSEServerTransport>();
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (req.method === 'GET' && url.pathname === '/sse') {
        streamRequested.reach();
        await endpoint.opened;
        const transport = new SSEServerTransport('/messages', res);
        transports.set(transport.sessionId, transport);
        await createDemoServer('held').connect(transport);
        return;
      }
      const transport = transports.get(url.searchParams.get('sessionId') ?? '');
      if (req.method !== 'POST' || url.pathname !== '/messages' || !transport) return void res.writeHead(404).end();
      const message = JSON.parse(await readBody(req)) as { method?: string };
      if (message.method === 'initialize') {
        initializeReceived.reach();
        await initialize.opened;
      }
      await transport.handlePostMessage(req, res, message);
    })().catch(() => {
      // An answer released after the client gave up finds its stream closed.
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  return listening(http, '/sse', () => transports.size, async () => {
    endpoint.release();
    initialize.release();
    await Promise.all([...transports.values()].map((t) => t.close()));
  }).then((running) => ({ ...running, streamRequested: streamRequested.reached, initializeReceived: initializeReceived.reached, endpoint, initialize }));
}

/** A server that answers the stream's GET (200, an event stream) and never sends its `endpoint` event. */
function startMuteSseUpstream(): Promise<RunningUpstream> {
  const http = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
  });
  return listening(http, '/sse', () => 0, async () => {});
}

const TIMEOUT_MS = 10_000;

function open(url: string, timeoutMs = TIMEOUT_MS): Promise<OpenedClient> {
  const config = testConfig({ held: { transport: 'sse', url } }).servers.held!;
  return openClient({ config, logger: silentLogger(), groups: new ChildProcessGroups(), newClient: () => new Client({ name: 'conflux-test', version: '1.0.0' }), timeoutMs });
}

describe('a legacy SSE upstream', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });

  it('gives the initialize after its endpoint event the connect timeout of its own', async () => {
    const upstream = await startHeldSseUpstream();
    stops.push(() => upstream.close());
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const opening = open(upstream.url);
    opening.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile

    // Each wait takes most of the timeout, both together more than all of it.
    await upstream.streamRequested;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 0.6);
    upstream.endpoint.release();
    await upstream.initializeReceived;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS * 0.6);
    upstream.initialize.release();

    const opened = await opening;
    vi.useRealTimers();
    try {
      expect(opened.wire).toBe('sse');
      expect(opened.protocol.era).toBe('legacy');
      expect((await opened.client.listTools()).tools.map((tool) => tool.name)).toContain('echo');
    } finally {
      await opened.client.close();
    }
  });

  it('says that no answer to initialize came, not that no endpoint event did, when initialize goes unanswered', async () => {
    const upstream = await startHeldSseUpstream();
    stops.push(() => upstream.close());
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    upstream.endpoint.release();
    const opening = open(upstream.url);
    opening.catch(() => {});
    await upstream.initializeReceived;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);

    const error = await opening.then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(UpstreamConnectError);
    expect((error as Error).message).toBe(`no answer within 10s at ${upstream.url}`);
    // The initialize's own timeout, as the SDK reports it.
    const cause = (error as Error).cause;
    expect(cause).toBeInstanceOf(SdkError);
    expect((cause as SdkError).code).toBe(SdkErrorCode.RequestTimeout);
    expect((cause as Error).message).not.toContain('endpoint');
  });

  it('says that the stream sent no endpoint event when the server answered the stream but sent none', async () => {
    const upstream = await startMuteSseUpstream();
    stops.push(() => upstream.close());
    // Real time: the stream is answered at once, long before the deadline.
    await expect(open(upstream.url, 2000)).rejects.toThrow(`the SSE stream sent no endpoint event within 2s at ${upstream.url}`);
  });
});

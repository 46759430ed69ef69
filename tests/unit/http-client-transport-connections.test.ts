import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { JSONRPCMessage } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyConnectFailure, describeConnectFailure, describeError } from '../../src/upstream/failure-classification.js';
import { HttpClientTransport } from '../../src/upstream/http-client-transport.js';
import { NO_UNDICI_TIMEOUTS, UpstreamHttpPool } from '../../src/upstream/upstream-http-pool.js';

/** What the test upstream does with each request, by JSON-RPC method (GET: the stream). */
type Handler = (request: IncomingMessage, response: ServerResponse, message?: { id?: number; method?: string }) => void;

interface Upstream {
  url: string;
  server: Server;
  /** Every request's Authorization header, in order. */
  authorizations: (string | undefined)[];
  /** Every request's headers, in order. */
  received: IncomingMessage['headers'][];
  connections(): Promise<number>;
  close(): Promise<void>;
}

async function startUpstream(handle: Handler): Promise<Upstream> {
  const authorizations: (string | undefined)[] = [];
  const received: IncomingMessage['headers'][] = [];
  const server = createServer((request, response) => {
    authorizations.push(request.headers.authorization);
    received.push(request.headers);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      handle(request, response, body ? (JSON.parse(body) as { id?: number; method?: string }) : undefined);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    server,
    authorizations,
    received,
    connections: () => new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const answer = (id: number | undefined, text: string): string => JSON.stringify({ jsonrpc: '2.0', id, result: { text } });

/** A request on `transport`, resolved with the messages it delivered by the time its answer came. */
async function ask(transport: HttpClientTransport, id: number, method: string): Promise<JSONRPCMessage[]> {
  const delivered: JSONRPCMessage[] = [];
  transport.onmessage = (message) => delivered.push(message);
  await transport.send({ jsonrpc: '2.0', id, method });
  return delivered;
}

describe('the HTTP client transport and its connections', () => {
  let upstream: Upstream;
  /** Responses the upstream holds open (the GET stream, a slow answer stream). */
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    upstream = await startUpstream((request, response, message) => {
      if (request.method === 'GET') {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(': open\n\n');
        held.push(response);
        return;
      }
      if (message?.method === 'notifications/initialized') return void response.writeHead(202).end();
      if (message?.method === 'hold') {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(': waiting\n\n');
        held.push(response);
        return;
      }
      if (message?.method === 'pause') {
        // An answer stream that says nothing for a while before its answer.
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(`id: 1\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`);
        setTimeout(() => response.end(`id: 2\ndata: ${answer(message.id, 'after the pause')}\n\n`), 1500);
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's-1' });
      response.end(answer(message?.id, 'ok'));
    });
  });

  afterAll(async () => {
    for (const response of held) response.destroy();
    await upstream.close();
  });

  it('leaves no connection open to the upstream once closed, with its GET stream and an answer stream open', async () => {
    const transport = new HttpClientTransport(new URL(upstream.url), { headers: {} });
    transport.onerror = () => {};
    expect(await ask(transport, 1, 'ping')).toEqual([{ jsonrpc: '2.0', id: 1, result: { text: 'ok' } }]);
    const heldBefore = held.length;
    await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const pending = transport.send({ jsonrpc: '2.0', id: 2, method: 'hold' });
    await expect.poll(() => held.length, { timeout: 30_000 }).toBe(heldBefore + 2);
    expect(await upstream.connections()).toBeGreaterThanOrEqual(2);

    await transport.close();
    await pending.catch(() => undefined);
    await expect.poll(() => upstream.connections(), { timeout: 30_000 }).toBe(0);
    await expect(transport.send({ jsonrpc: '2.0', id: 3, method: 'ping' })).rejects.toThrow('transport closed');
    expect(await upstream.connections()).toBe(0);
  });

  it('reads an answer stream that is silent between its events, undici timing nothing out', async () => {
    expect(NO_UNDICI_TIMEOUTS).toEqual({ headersTimeout: 0, bodyTimeout: 0 });
    const transport = new HttpClientTransport(new URL(upstream.url), { headers: {} });
    try {
      const delivered = await ask(transport, 7, 'pause');
      expect(delivered.map((message) => ('result' in message ? message.result : 'method' in message ? message.method : undefined))).toEqual([
        'notifications/progress',
        { text: 'after the pause' },
      ]);
    } finally {
      await transport.close();
    }
  });

  it('sends configured headers but leaves out those about the connection the pool refuses; Connection: close it honours', async () => {
    const headers = { 'X-Team': 'blue', Connection: 'close', 'Keep-Alive': 'timeout=5', Upgrade: 'h2c', Expect: '100-continue', 'Transfer-Encoding': 'chunked' };
    const transport = new HttpClientTransport(new URL(upstream.url), { headers });
    try {
      expect(await ask(transport, 1, 'ping')).toEqual([{ jsonrpc: '2.0', id: 1, result: { text: 'ok' } }]);
      const seen = upstream.received.at(-1)!;
      expect(seen['x-team']).toBe('blue');
      expect([seen.upgrade, seen.expect, seen['transfer-encoding'], seen['keep-alive']]).toEqual([undefined, undefined, undefined, undefined]);
      expect(seen.connection).toBe('close');
    } finally {
      await transport.close();
    }
  });

  it('sends the credentials of the URL as Basic auth, as node:http did', async () => {
    const url = new URL(upstream.url);
    url.username = 'user';
    url.password = 'p%40ss';
    const transport = new HttpClientTransport(url, { headers: {} });
    try {
      await ask(transport, 1, 'ping');
      expect(upstream.authorizations.at(-1)).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    } finally {
      await transport.close();
    }
  });
});

describe("undici's timeouts and errors on the upstream's connections", () => {
  it('a body timeout would cut a silent stream: the one the pool turns off', async () => {
    let held: ServerResponse | undefined;
    const upstream = await startUpstream((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(': open\n\n');
      held = response;
    });
    const pool = new UpstreamHttpPool(new URL(upstream.url), { headersTimeout: 0, bodyTimeout: 200 });
    try {
      const response = await pool.request('GET', undefined, { accept: 'text/event-stream' }, undefined, undefined);
      const failure = await new Promise<unknown>((resolve) => {
        response.stream!.on('error', resolve);
        response.resume();
      });
      expect((failure as { code?: string }).code).toBe('UND_ERR_BODY_TIMEOUT');
    } finally {
      held?.destroy();
      await pool.close();
      await upstream.close();
    }
  });

  it('words a connection the server drops as node:http had it: reset, retryable', async () => {
    const upstream = await startUpstream((request) => request.socket.destroy());
    const transport = new HttpClientTransport(new URL(upstream.url), { headers: {} });
    try {
      const failure = await transport.send({ jsonrpc: '2.0', id: 1, method: 'initialize' }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(TypeError);
      expect(describeError(failure)).toBe('fetch failed (ECONNRESET)');
      expect(describeConnectFailure(failure, { url: upstream.url, wire: 'streamable-http', credentials: false, timeoutMs: 5000 })).toBe(`connection reset at ${upstream.url}`);
      expect(classifyConnectFailure(failure)).toBe('retryable');
    } finally {
      await transport.close();
      await upstream.close();
    }
  });

  it('words a malformed answer by what is wrong with it', async () => {
    const server = createNetServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\n{}'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const transport = new HttpClientTransport(new URL(url), { headers: {} });
    try {
      const failure = await transport.send({ jsonrpc: '2.0', id: 1, method: 'initialize' }).catch((error: unknown) => error);
      expect(describeError(failure)).toMatch(/^fetch failed \(Response does not match the HTTP\/1\.1 protocol \(Invalid header value char\)\)$/);
      expect(describeConnectFailure(failure, { url, wire: 'streamable-http', credentials: false, timeoutMs: 5000 })).toContain(`Invalid header value char)) at ${url}`);
    } finally {
      await transport.close();
      server.close();
    }
  });

  it('names a configured header whose value cannot be sent, and not its value', async () => {
    const upstream = await startUpstream((_request, response) => response.end());
    const transport = new HttpClientTransport(new URL(upstream.url), { headers: { 'X-Key': 'secret-value\n' } });
    try {
      const failure = await transport.send({ jsonrpc: '2.0', id: 1, method: 'initialize' }).catch((error: unknown) => error);
      const words = describeError(failure);
      expect(words).toBe('fetch failed (invalid x-key header)');
      expect(upstream.received).toEqual([]);
    } finally {
      await transport.close();
      await upstream.close();
    }
  });

  it('words a refused connection as before', async () => {
    const upstream = await startUpstream(() => {});
    const url = upstream.url;
    await upstream.close();
    const transport = new HttpClientTransport(new URL(url), { headers: {} });
    try {
      const failure = await transport.send({ jsonrpc: '2.0', id: 1, method: 'initialize' }).catch((error: unknown) => error);
      expect(describeError(failure)).toBe('connection refused');
      expect(describeConnectFailure(failure, { url, wire: 'streamable-http', credentials: false, timeoutMs: 5000 })).toBe(`connection refused at ${url} (is the server running?)`);
    } finally {
      await transport.close();
    }
  });
});

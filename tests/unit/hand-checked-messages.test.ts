import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { classifyInboundRequest, parseJSONRPCMessage } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainLegacyRequest } from '../../src/http/mcp-endpoint.js';
import { asJsonRpcMessage, isPlainResult } from '../../src/upstream/http-responses.js';
import { UpstreamHttpPool } from '../../src/upstream/upstream-http-pool.js';

/**
 * The hot path checks the most common messages by hand instead of by the SDK's schemas; each
 * hand check must accept nothing the schema (or the classification built on it) would read
 * differently.
 */

const results: unknown[] = [
  { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hi' }] } },
  { jsonrpc: '2.0', id: 'a', result: {} },
  { jsonrpc: '2.0', id: 1.5, result: {} },
  { jsonrpc: '2.0', id: 2 ** 60, result: {} },
  { jsonrpc: '2.0', id: null, result: {} },
  { jsonrpc: '2.0', result: {} },
  { jsonrpc: '1.0', id: 1, result: {} },
  { jsonrpc: '2.0', id: 1, result: [] },
  { jsonrpc: '2.0', id: 1, result: null },
  { jsonrpc: '2.0', id: 1, result: 'text' },
  { jsonrpc: '2.0', id: 1, result: {}, extra: true },
  { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'both' } },
  { jsonrpc: '2.0', id: 1, result: { _meta: { 'io.modelcontextprotocol/serverInfo': 'not an object' } } },
  { jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'nope' } },
  { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } },
  [],
  null,
  'text',
];

describe('an upstream answer checked by hand', () => {
  it('is accepted only where the schema accepts it, and read as the schema reads it', () => {
    for (const value of results) {
      let parsed: unknown;
      try {
        parsed = parseJSONRPCMessage(value);
      } catch {
        parsed = undefined;
      }
      if (isPlainResult(value)) expect(parsed, JSON.stringify(value)).toEqual(value);
      expect(asJsonRpcMessage(value), JSON.stringify(value)).toEqual(parsed);
    }
    // The common answer takes the hand check; one with `_meta` (which the schema rewrites) does not.
    expect(isPlainResult(results[0])).toBe(true);
    expect(isPlainResult(results[12])).toBe(false);
  });
});

describe('a 2025 request recognised on sight', () => {
  const bodies: unknown[] = [
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } },
    { jsonrpc: '2.0', id: 'x', method: 'tools/list' },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { _meta: { progressToken: 1 } } },
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } },
    { jsonrpc: '2.0', id: 1.5, method: 'tools/call' },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: [] },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: null },
    { jsonrpc: '2.0', id: 1, method: 'tools/call', extra: 1 },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 1, result: {} },
    [{ jsonrpc: '2.0', id: 1, method: 'ping' }],
    'text',
  ];
  const headers = [null, '2025-11-25', '2025-06-18', '2026-07-28', ' 2025-11-25', 'garbage'];

  it('is one the classification calls legacy, and only such', () => {
    let recognised = 0;
    for (const body of bodies) {
      for (const header of headers) {
        if (!plainLegacyRequest(header, body)) continue;
        recognised++;
        const outcome = classifyInboundRequest({ httpMethod: 'POST', protocolVersionHeader: header ?? undefined, body });
        expect(outcome.kind, `${JSON.stringify(body)} with ${header}`).toBe('legacy');
      }
    }
    // The plain call and list, without a header or with a 2025 one: the common case is recognised.
    expect(recognised).toBe(6);
    expect(plainLegacyRequest('2026-07-28', bodies[0])).toBe(false);
  });
});

describe('reading a whole response body', () => {
  let server: Server;
  let pool: UpstreamHttpPool;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const which = new URL(req.url ?? '/', 'http://localhost').searchParams.get('case');
      if (which === 'cut') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"partial":');
        setTimeout(() => res.destroy(), 50);
        return;
      }
      if (which === 'chunked') {
        // A character split across two chunks, and more than the body kept unread.
        res.writeHead(200, { 'content-type': 'application/json' });
        const euro = Buffer.from('€');
        res.write(Buffer.concat([Buffer.from(`"${'x'.repeat(100 * 1024)}`), euro.subarray(0, 1)]));
        setTimeout(() => res.end(Buffer.concat([euro.subarray(1), Buffer.from('"')])), 20);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(which === 'big' ? 'x'.repeat(4096) : '{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    pool = new UpstreamHttpPool(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`));
  });

  afterAll(async () => {
    await pool.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const get = (which?: string) => pool.request('GET', which ? { case: which } : undefined, {}, undefined, undefined);

  it('resolves with the body, read whole', async () => {
    const response = await get();
    expect(response.stream).toBeUndefined();
    expect(await response.text(1024)).toBe('{"ok":true}');
    expect(JSON.parse(await (await get('chunked')).text(1024 * 1024))).toBe(`${'x'.repeat(100 * 1024)}€`);
  });

  it('fails a body over the limit, and one that closes before its end', async () => {
    await expect((await get('big')).text(1024)).rejects.toThrow('a response body larger than 1 KiB, the limit for one message');
    await expect((await get('cut')).text(1024)).rejects.toThrow();
  });
});

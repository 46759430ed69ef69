import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, startGateway, stdioFixture, testConfig, textOf, type RunningGateway } from '../helpers/gateway.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Deterministic, so a failure can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Probe {
  path: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

const METHODS = ['initialize', 'tools/list', 'tools/call', 'resources/read', 'prompts/get', 'ping', 'completion/complete', 'logging/setLevel', 'nope', '', 'notifications/cancelled'];
const VALUES: unknown[] = [null, true, 0, -1, 1e308, 'x', '', [], {}, [[[]]], { a: { b: { c: {} } } }, '\u0000\uffff', 'A'.repeat(5000), Number.MAX_SAFE_INTEGER];

function hostileProbes(count: number, sessionId: string): Probe[] {
  const random = prng(20261122);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const probes: Probe[] = [];
  for (let i = 0; i < count; i++) {
    const session: Record<string, string> = random() < 0.6 ? { 'mcp-session-id': random() < 0.8 ? sessionId : pick(['', 'x', '../../etc', 'A'.repeat(300)]) } : {};
    const version: Record<string, string> = random() < 0.2 ? { 'mcp-protocol-version': pick(['', '1999-01-01', '2025-11-25', 'garbage', '9'.repeat(100)]) } : {};
    const kind = Math.floor(random() * 10);
    let body: string;
    switch (kind) {
      case 0: // bytes that are not JSON
        body = Array.from({ length: 1 + Math.floor(random() * 200) }, () => String.fromCharCode(Math.floor(random() * 256))).join('');
        break;
      case 1: // truncated JSON
        body = JSON.stringify({ jsonrpc: '2.0', id: i, method: pick(METHODS), params: { name: 'm__echo' } }).slice(0, Math.floor(random() * 40));
        break;
      case 2: // deep nesting
        body = `${'['.repeat(200 + Math.floor(random() * 5000))}${']'.repeat(10)}`;
        break;
      case 3: // wrong types everywhere
        body = JSON.stringify({ jsonrpc: pick(VALUES), id: pick(VALUES), method: pick(VALUES), params: pick(VALUES) });
        break;
      case 4: // plausible methods with hostile params
        body = JSON.stringify({ jsonrpc: '2.0', id: i, method: pick(METHODS), params: { name: pick(VALUES), arguments: pick(VALUES), uri: pick(VALUES), cursor: pick(VALUES), ref: pick(VALUES), level: pick(VALUES) } });
        break;
      case 5: // batches of garbage
        body = JSON.stringify(Array.from({ length: Math.floor(random() * 20) }, () => pick([...VALUES, { jsonrpc: '2.0', method: pick(METHODS) }])));
        break;
      case 6: // unknown tools and prototype keys
        body = JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: pick(['__proto__', 'constructor', 'm__nope', 'broadcast__x', 'conflux__call_tool', '']), arguments: { __proto__: { polluted: true } } } });
        break;
      case 7: // REST with bad bodies
        probes.push({
          path: pick(['/api/v1/servers', '/api/v1/tools/m__echo/call', '/api/v1/broadcast', '/api/v1/servers/%2e%2e', '/api/v1/audit?limit=-5&from=yesterday']),
          method: pick(['POST', 'PUT', 'PATCH', 'DELETE', 'GET']),
          headers: { 'content-type': pick(['application/json', 'text/plain', '']) },
          body: pick(['{', '[]', 'null', '{"name":{}}', JSON.stringify({ name: 'a'.repeat(100), url: 'javascript:alert(1)' }), '{"tool":1}']),
        });
        continue;
      case 8: // wrong headers on a well-formed request
        probes.push({
          path: '/mcp',
          method: pick(['POST', 'GET', 'DELETE', 'PUT', 'PATCH']),
          headers: { ...session, 'content-type': pick(['text/html', 'application/json', '']), accept: pick(['', 'text/html', 'application/json', '*/*']), ...(random() < 0.3 ? { origin: pick(['http://evil.example', 'null', 'file://']) } : {}) },
          body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/list' }),
        });
        continue;
      default: // huge but under the limit
        body = JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'm__echo', arguments: { text: 'x'.repeat(Math.floor(random() * 200_000)) } } });
    }
    probes.push({ path: '/mcp', method: 'POST', headers: { ...json, ...session, ...version }, body });
  }
  return probes;
}

describe('hostile input', () => {
  let gateway: RunningGateway;
  let base: string;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({ m: stdioFixture('m') }, { maxBodyBytes: 512 * 1024, limits: { maxJsonDepth: 100 } }));
    base = gateway.url.replace(/\/mcp$/, '');
  });
  afterAll(async () => gateway?.stop());

  it('answers thousands of malformed and hostile requests with 4xx or JSON-RPC errors, and stays up with bounded memory', async () => {
    const { client, close } = await connectClient(gateway.url);
    const sessionId = (client.transport as unknown as { sessionId: string }).sessionId;
    const probes = hostileProbes(3000, sessionId);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const unexpected: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < probes.length) {
        const probe = probes[next++]!;
        const response = await fetch(base + probe.path, {
          method: probe.method,
          headers: probe.headers,
          body: probe.method === 'GET' || probe.method === 'HEAD' ? undefined : probe.body,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await readSome(response);
        const ok2xx = response.status >= 200 && response.status < 300;
        if (response.status >= 500) unexpected.push(`${response.status} ${probe.method} ${probe.path} ${probe.body?.slice(0, 80)} → ${text.slice(0, 120)}`);
        // a 2xx JSON body to a hostile JSON-RPC message must be a JSON-RPC response, not something else
        if (ok2xx && probe.path === '/mcp' && text.startsWith('{') && !/"jsonrpc":"2.0"/.test(text)) unexpected.push(`odd 2xx body: ${text.slice(0, 120)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(unexpected).toEqual([]);

    // still serving (a hostile DELETE may have ended the first session), and nothing polluted
    await close();
    const fresh = await connectClient(gateway.url);
    expect(textOf(await fresh.client.callTool({ name: 'm__echo', arguments: { text: 'alive' } }))).toBe('m: alive');
    await fresh.close();
    expect(({}) as Record<string, unknown>).not.toHaveProperty('polluted');
    gc();
    const growthMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
    expect(growthMb).toBeLessThan(64);
    expect(gateway.conflux.sessions.size).toBeLessThan(200);
  }, 120_000);
});

/** The body, or its start for a stream that stays open (a GET SSE stream). */
async function readSome(response: Response): Promise<string> {
  if (!response.body) return '';
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const reader = response.body.getReader();
    const first = await Promise.race([reader.read(), new Promise<{ value?: Uint8Array }>((r) => setTimeout(() => r({}), 200))]);
    await reader.cancel().catch(() => {});
    return first.value ? new TextDecoder().decode(first.value) : '';
  }
  return response.text();
}

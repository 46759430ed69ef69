import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bestRound, compareTargets, roundOrder } from '../../bench/compare.js';
import { post, Session, type LoadResult } from '../../bench/load.js';
import { LEAN_UPSTREAM, start, type Running } from '../../bench/processes.js';

/** The bench's lean upstream must be a correct MCP server, or workload 1b measures nothing real. */
describe('bench lean upstream', () => {
  let upstream: Running;
  let proxy: Running;
  beforeAll(async () => {
    upstream = await start(LEAN_UPSTREAM);
    proxy = await start(['--import', 'tsx', 'bench/byte-proxy.ts', upstream.url]);
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it('serves the SDK client, which probes with server/discover and falls back to initialize', async () => {
    const client = new Client({ name: 'bench-test', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${upstream.url}/mcp/0`)));
    try {
      expect(client.getServerVersion()?.name).toBe('lean-echo');
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['echo']);
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hello "there"' } });
      expect(result.content).toEqual([{ type: 'text', text: 'hello "there"' }]);
      const unknown = await client.callTool({ name: 'nope', arguments: {} }).catch((error: Error) => error.message);
      expect(String(unknown)).toContain('Unknown tool: nope');
    } finally {
      await client.close();
    }
  });

  it('refuses calls outside a session and forgets a session once deleted', async () => {
    const call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}';
    expect((await post(`${upstream.url}/mcp/0`, call)).status).toBe(400);
    expect((await post(`${upstream.url}/mcp/0`, call, { 'mcp-session-id': 'unknown' })).status).toBe(404);
    const session = await Session.open(`${upstream.url}/mcp/0`);
    expect(await session.call('tools/call', { name: 'echo', arguments: { text: 'x' } })).toBe('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}]}}');
    await session.close();
    expect((await post(`${upstream.url}/mcp/0`, call, session.headers())).status).toBe(404);
  });

  it('compares targets in alternating rounds after warming each up, keeping each one\'s best round', async () => {
    const opened: string[] = [];
    const target = (name: string, url: string) => ({
      name,
      open: async () => {
        opened.push(name);
        const session = await Session.open(url);
        return { call: () => session.call('tools/call', { name: 'echo', arguments: { text: 'hi' } }), close: () => session.close() };
      },
    });
    const levels = await compareTargets([target('direct', `${upstream.url}/mcp/0`), target('proxy', `${proxy.url}/mcp/0`)], {
      concurrency: [1, 2],
      rounds: 2,
      seconds: 0.05,
      settleSeconds: 0,
      warmUp: { sessions: 2, calls: 20, maxSeconds: 5 },
    });
    // Warm-up (2 sessions each), then per level: direct, proxy, then proxy, direct.
    expect(opened).toEqual(['direct', 'direct', 'proxy', 'proxy', 'direct', 'proxy', 'proxy', 'direct', ...Array(2).fill('direct'), ...Array(4).fill('proxy'), ...Array(2).fill('direct')]);
    expect(levels.map((l) => l.sessions)).toEqual([1, 2]);
    for (const level of levels) {
      for (const name of ['direct', 'proxy']) {
        const rounds = level.rounds[name]!;
        expect(rounds).toHaveLength(2);
        expect(rounds.every((r) => r.errors === 0 && r.calls > 0)).toBe(true);
        expect(level.best[name]!.callsPerSecond).toBe(Math.max(...rounds.map((r) => r.callsPerSecond)));
      }
    }
  });

  it('keeps measuring the other targets when one fails', async () => {
    let prepared = 0;
    const levels = await compareTargets(
      [
        {
          name: 'direct',
          open: async () => {
            const session = await Session.open(`${upstream.url}/mcp/0`);
            return { call: () => session.call('tools/call', { name: 'echo', arguments: { text: 'hi' } }), close: () => session.close() };
          },
        },
        {
          name: 'broken',
          prepare: async () => void prepared++,
          open: () => Promise.reject(new Error('refused')),
        },
      ],
      { concurrency: [1, 2], rounds: 2, seconds: 0.05, settleSeconds: 0, warmUp: { sessions: 1, calls: 5, maxSeconds: 5 } },
    );
    expect(prepared).toBe(1); // before its warm-up, which failed: never again
    for (const level of levels) {
      expect(level.rounds.broken!.map((r) => [r.calls, r.errors, r.firstError])).toEqual([
        [0, 1, 'warm-up: refused'],
        [0, 1, 'warm-up: refused'],
      ]);
      expect(level.rounds.direct!.every((r) => r.errors === 0 && r.calls > 0)).toBe(true);
    }
  });
});

describe('bench round helpers', () => {
  const result = (callsPerSecond: number): LoadResult => ({ calls: 1, errors: 0, seconds: 1, callsPerSecond, p50Ms: 1, p99Ms: 1 });

  it('keeps the round with the most calls per second', () => {
    const rounds = [result(10), result(30), result(20)];
    expect(bestRound(rounds)).toBe(rounds[1]);
    expect(() => bestRound([])).toThrow('no rounds');
  });

  it('measures forwards, then backwards', () => {
    expect(roundOrder(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(roundOrder(['a', 'b', 'c'], 1)).toEqual(['c', 'b', 'a']);
    expect(roundOrder(['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c']);
  });
});

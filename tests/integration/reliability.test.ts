import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, connectClient, isAlive, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { newRedis, redisAvailable } from '../helpers/redis.js';
import { scaled } from '../helpers/load-scale.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';

const hasRedis = await redisAvailable();

describe('faults with real processes', () => {
  it('kill mid-call: the client gets an error at once, the server restarts, the next call succeeds', async () => {
    // A call timeout longer than the test's: a gateway that waited for it rather than noticing the
    // exit would fail the test, whatever the machine's speed.
    const gateway = await startGateway(testConfig({ victim: stdioFixture('victim', { timeout: 3600 }) }));
    try {
      const { client, close } = await connectClient(gateway.url);
      const pid = gateway.conflux.upstreams.get('victim')!.status().pid!;
      const call = client.callTool({ name: 'victim__work', arguments: {} });
      // Killed only once the server is working on the call, so the call is in flight.
      await waitFor(async () => textOf(await client.callTool({ name: 'victim__work_status', arguments: {} })) === 'running', 10_000, 'the call to reach the server');
      process.kill(pid, 'SIGKILL');
      const result = await call;
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^upstream "victim" lost its connection during tools\/call/);
      await waitFor(() => gateway.conflux.upstreams.get('victim')!.state === 'ready', 10_000, 'the restart');
      expect(gateway.conflux.upstreams.get('victim')!.status().pid).not.toBe(pid);
      expect(textOf(await client.callTool({ name: 'victim__echo', arguments: { text: 'back' } }))).toBe('victim: back');
      const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, '/metrics'))).text();
      expect(metrics).toMatch(/mcp_server_restarts_total\{server_id="victim"\} 1/);
      await close();
    } finally {
      await gateway.stop();
    }
  });

  it('a hanging server times out, the breaker opens and fails fast, then a probe closes it', async () => {
    // A cooldown no busy machine outlasts by accident, passed by moving the connections' clock
    // on: with one of a second, a slow step could let the probe through before the checks of
    // the open breaker.
    let skew = 0;
    const gateway = await startGateway(
      testConfig({ slow: stdioFixture('slow', { timeout: 0.5 }) }, { circuitBreaker: { failureThreshold: 2, cooldownSeconds: 600 } }),
      { now: () => Date.now() + skew },
    );
    try {
      const { client, close } = await connectClient(gateway.url);
      for (let i = 0; i < 2; i++) {
        const timedOut = await client.callTool({ name: 'slow__sleep', arguments: { ms: 3000 } });
        expect(textOf(timedOut)).toBe('upstream "slow" did not answer tools/call within 0.5s');
      }
      expect(gateway.conflux.upstreams.get('slow')!.status()).toMatchObject({ state: 'degraded', breaker: 'open' });
      const fast = await client.callTool({ name: 'slow__echo', arguments: { text: 'x' } });
      // Refused by the breaker without being sent: a sent call would have been answered ("slow: x")
      // or have timed out, and said so.
      expect(textOf(fast)).toMatch(/^upstream "slow" is unavailable: circuit breaker open after repeated failures; next try in \d+s$/);
      const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, '/metrics'))).text();
      expect(metrics).toContain('mcp_circuit_breaker_state{server_id="slow"} 2');
      skew += 600_000;
      expect(textOf(await client.callTool({ name: 'slow__echo', arguments: { text: 'probe' } }))).toBe('slow: probe');
      expect(gateway.conflux.upstreams.get('slow')!.status()).toMatchObject({ state: 'ready', breaker: 'closed' });
      await close();
    } finally {
      await gateway.stop();
    }
  });

  it('stops restarting a server that keeps crashing, and says why', async () => {
    const gateway = await startGateway(
      testConfig(
        { crashy: { command: process.execPath, args: ['-e', 'console.error("boom"); process.exit(7)'] } },
        { reconnect: { initialDelayMs: 20, maxDelayMs: 40, maxAttempts: 3 } },
      ),
    );
    try {
      await waitFor(() => /gave up/.test(gateway.conflux.upstreams.get('crashy')!.lastError ?? ''), 10_000, 'the restart limit');
      const status = gateway.conflux.upstreams.get('crashy')!.status();
      expect(status.state).toBe('down');
      expect(status.lastError).toBe('process exited with code 7; stderr: boom (gave up after 3 attempts; restart it or change its config)');
      expect(status.nextRetryAt).toBeUndefined();
      await new Promise((r) => setTimeout(r, 300));
      expect(gateway.conflux.upstreams.get('crashy')!.status().lastError).toMatch(/gave up after 3 attempts/); // no further attempts
      // an admin restart tries again
      const restart = await fetch(gateway.url.replace(/\/mcp$/, '/api/v1/servers/crashy/restart'), { method: 'POST' });
      expect(restart.status).toBe(202);
    } finally {
      await gateway.stop();
    }
  });

  it('shuts down gracefully: calls in flight complete, then no child process remains', async () => {
    // Ample grace: stopping waits only as long as the call still needs.
    const gateway = await startGateway(testConfig({ a: stdioFixture('a'), b: stdioFixture('b') }, { shutdownGraceSeconds: 30 }));
    try {
      const pids = gateway.conflux.upstreams.statuses().map((s) => s.pid!);
      const { client } = await connectClient(gateway.url);
      let working!: () => void;
      const firstProgress = new Promise<void>((resolve) => (working = resolve));
      const inFlight = client.callTool({ name: 'a__count', arguments: { n: 10, gapMs: 70 } }, undefined, { onprogress: () => working() });
      // Stopped once the server reports progress on the call: it is in flight, not yet sent or already done.
      await firstProgress;
      const stopping = gateway.stop();
      expect(textOf(await inFlight)).toBe('a counted to 10');
      await stopping;
      expect(pids.some(isAlive)).toBe(false);
      await expect(fetch(gateway.url.replace(/\/mcp$/, '/health'))).rejects.toThrow();
    } finally {
      await gateway.stop();
    }
  });

  it('does not wait out the grace period for open listen and event streams, which last as long as their client', async () => {
    // A grace period longer than the test's timeout: waiting it out fails the test.
    const gateway = await startGateway(testConfig({ b: stdioFixture('b') }, { shutdownGraceSeconds: 600 }));
    try {
      const listen = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'subscriptions/listen',
          params: {
            notifications: { toolsListChanged: true },
            _meta: modernEnvelope(),
          },
        }),
      });
      const sse = await fetch(gateway.url.replace(/\/mcp$/, '/sse'), { headers: { accept: 'text/event-stream' } });
      expect([listen.status, listen.headers.get('content-type'), sse.status]).toEqual([200, 'text/event-stream', 200]);
      const readToEnd = async (response: Response) => {
        const reader = response.body!.getReader();
        let read = '';
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return read;
            read += new TextDecoder().decode(value);
          }
        } catch {
          return read;
        }
      };
      const listenRead = readToEnd(listen);
      const sseRead = readToEnd(sse);
      await waitFor(() => gateway.conflux.sessions.size === 1, 5000, 'the SSE session');
      await gateway.stop();
      expect(await listenRead).toContain('notifications/subscriptions/acknowledged');
      expect(await sseRead).toContain('event: endpoint');
    } finally {
      await gateway.stop();
    }
  }, scaled(30_000));
});

describe('rate limits', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({ one: stdioFixture('one') }, { rateLimit: { perPrincipal: 10, perServer: 3, windowSeconds: 60 } }));
  });
  afterAll(async () => gateway?.stop());

  it('refuses calls to a server over its limit with a JSON-RPC error, and clients over theirs with 429', async () => {
    const { client } = await connectClient(gateway.url); // initialize, initialized and the GET stream: 3 requests
    await client.callTool({ name: 'one__echo', arguments: { text: '1' } });
    await client.callTool({ name: 'one__echo', arguments: { text: '2' } });
    await client.callTool({ name: 'one__echo', arguments: { text: '3' } });
    const error = await client.callTool({ name: 'one__echo', arguments: { text: '4' } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: -32000, data: { scope: 'server' } });
    expect((error as Error).message).toMatch(/rate limit exceeded for server "one"; retry after \d+s/);

    const ping = () =>
      fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      });
    const statuses: number[] = [];
    let response = await ping();
    for (let i = 0; i < 20 && response.status !== 429; i++) {
      statuses.push(response.status);
      response = await ping();
    }
    expect(response.status).toBe(429);
    expect(statuses.length).toBe(3); // 3 + 4 calls + 3 pings = the 10 allowed requests
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await response.json()).toMatchObject({ error: { code: -32000, message: expect.stringMatching(/^rate limit exceeded for ip:/) } });
    const rest = await fetch(gateway.url.replace(/\/mcp$/, '/api/v1/servers'));
    expect(rest.status).toBe(429);
    expect(rest.headers.get('retry-after')).toBeTruthy();
    expect(await rest.json()).toMatchObject({ error: { code: 'rate_limited', details: { scope: 'principal' } } });
    const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, '/metrics'))).text();
    expect(metrics).toMatch(/mcp_rate_limit_rejections_total\{scope="principal"\} [1-9]/);
    expect(metrics).toMatch(/mcp_rate_limit_rejections_total\{scope="server"\} 1/);
  });
});

describe.skipIf(!hasRedis)('rate limits shared through Redis', () => {
  it('two gateways on one Redis share a principal budget', async () => {
    const redis = [newRedis(), newRedis()];
    const stale = await redis[0]!.keys('conflux:rl:p:ip:127.0.0.1:*'); // from earlier runs
    if (stale.length) await redis[0]!.del(...stale);
    const config = testConfig({}, { rateLimit: { perPrincipal: 4, perServer: 0, windowSeconds: 60 } });
    const { createConflux } = await import('../../src/conflux.js');
    const { silentLogger } = await import('../../src/observability/logger.js');
    const gateways = redis.map((r) => createConflux(config, { logger: silentLogger(), redis: r }));
    try {
      const urls = [];
      for (const g of gateways) {
        await g.start();
        urls.push((await g.listen('127.0.0.1', 0)).url.replace(/\/mcp$/, '/api/v1/tools'));
      }
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await fetch(urls[i % 2]!)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    } finally {
      for (const g of gateways) await g.stop();
      for (const r of redis) r.disconnect();
    }
  });
});

describe('metrics', () => {
  it('exposes server, tool and session metrics in Prometheus format', async () => {
    const gateway = await startGateway(testConfig({ m: stdioFixture('m') }));
    try {
      const { client, close } = await connectClient(gateway.url);
      await client.callTool({ name: 'm__echo', arguments: { text: 'x' } });
      await client.callTool({ name: 'm__fail', arguments: {} });
      const response = await fetch(gateway.url.replace(/\/mcp$/, '/metrics'));
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await response.text();
      expect(text).toContain('mcp_server_status{server_id="m"} 1');
      expect(text).toContain('mcp_server_state{server_id="m",state="ready"} 1');
      expect(text).toMatch(/mcp_server_uptime_seconds\{server_id="m"\} \d/);
      expect(text).toContain('mcp_tool_executions_total{tool_id="m__echo",status="ok"} 1');
      expect(text).toContain('mcp_tool_executions_total{tool_id="m__fail",status="error"} 1');
      expect(text).toContain('mcp_tool_execution_duration_seconds_count{tool_id="m__echo"} 1');
      expect(text).toContain('mcp_user_sessions_active 1');
      expect(text).toContain('mcp_user_sessions_created_total 1');
      // every metric the shipped dashboard and the operations guide use exists
      const dashboard = await readFile(join(ROOT, 'deploy/grafana-dashboard.json'), 'utf8');
      const guide = await readFile(join(ROOT, 'docs/operations.md'), 'utf8');
      const used = new Set([...`${dashboard}\n${guide}`.matchAll(/\b((?:mcp|conflux)_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]!));
      used.delete('conflux_process_'); // the guide's wildcard rows
      used.delete('conflux_nodejs_');
      used.delete('conflux_nodejs_active_'); // the guide names the per-type series that replace the _total gauges
      for (const name of used) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
      await close();
    } finally {
      await gateway.stop();
    }
  });
});

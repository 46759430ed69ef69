/**
 * `npm run bench` (full, writes docs/benchmarks.md) or `npm run bench -- --quick` (a smoke run
 * under a minute that checks every workload completes with zero errors; it asserts no timings).
 * Every workload runs real processes on loopback and is compared with its baseline in the same run.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad, percentiles, round, Session, StatelessClient, type LoadResult } from './load.js';
import { ROOT, start, upstreams, type Running } from './processes.js';
import { renderResults, writeResults } from './report.js';
import { scaleOut } from './scale-out.js';
import { SseSession } from './sse-session.js';
import { StdioClient } from './stdio-client.js';
import { SignJWT } from 'jose';

const quick = process.argv.includes('--quick');
/** `--only "stdio hop,peers"` runs just those workloads (and writes no report files). */
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]!.split(',') : undefined;
const SECONDS = quick ? 1.5 : 8;
const WARMUP = quick ? 0.5 : 2;
const CONCURRENCY = quick ? [1, 16] : [1, 16, 64];
const report: Record<string, unknown> = {};
const problems: string[] = [];
const running: Running[] = [];

async function gateway(servers: Record<string, unknown>, gatewaySettings: Record<string, unknown> = {}): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-bench-'));
  const config = join(dir, 'config.json');
  await writeFile(
    config,
    JSON.stringify({
      gateway: { port: 0, limits: { maxSessionsPerPrincipal: 20_000, maxSessions: 20_000 }, healthCheck: { intervalSeconds: 0 }, ...gatewaySettings },
      servers,
    }),
  );
  const gw = await start(['dist/cli.js', 'serve', '--config', config, '--port', '0'], { LOG_LEVEL: 'info', CONFLUX_DATA_DIR: join(dir, 'data') });
  running.push(gw);
  await waitReady(gw.url);
  return gw;
}

async function waitReady(mcpUrl: string, timeoutMs = 120_000): Promise<number> {
  const started = performance.now();
  const url = mcpUrl.replace(/\/mcp$/, '/ready');
  while (performance.now() - started < timeoutMs) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${url} not ready in time`);
}

function check(name: string, result: LoadResult | { errors: number; firstError?: string }): void {
  if (result.errors > 0) problems.push(`${name}: ${result.errors} errors (${result.firstError ?? ''})`);
}

const echoCall = (session: Session, tool = 'echo') => () => session.call('tools/call', { name: tool, arguments: { text: 'hello' } });
const httpClient = (url: string, tool = 'echo', credentials: Record<string, string> = {}) => async () => {
  const session = await Session.open(url, credentials);
  return { call: echoCall(session, tool), close: () => session.close() };
};

/** A 2026-07-28 caller: one stateless client per simulated session, nothing to open or close. */
const statelessClient = (url: string, tool = 'echo') => async () => {
  const client = new StatelessClient(url);
  return { call: () => client.call('tools/call', { name: tool, arguments: { text: 'hello' } }), close: async () => {} };
};

/**
 * 1. tools/call on a Streamable HTTP upstream: direct, through the byte proxy, through Conflux
 * (a 2025-11-25 session), and through Conflux as a sessionless 2026-07-28 client.
 */
async function hopCost(): Promise<void> {
  const upstream = await start(upstreams('http'));
  running.push(upstream);
  const proxy = await start(['--import', 'tsx', 'bench/byte-proxy.ts', upstream.url]);
  running.push(proxy);
  const gw = await gateway({ echo: { url: `${upstream.url}/mcp/0`, prefix: '' } });
  const rows = [];
  for (const sessions of CONCURRENCY) {
    const direct = await runLoad(sessions, SECONDS, WARMUP, httpClient(`${upstream.url}/mcp/0`));
    const viaProxy = await runLoad(sessions, SECONDS, WARMUP, httpClient(`${proxy.url}/mcp/0`));
    const viaGateway = await runLoad(sessions, SECONDS, WARMUP, httpClient(gw.url));
    const viaGateway2026 = await runLoad(sessions, SECONDS, WARMUP, statelessClient(gw.url));
    for (const [name, r] of [['direct', direct], ['proxy', viaProxy], ['gateway', viaGateway], ['gateway 2026', viaGateway2026]] as const) check(`http ${name} x${sessions}`, r);
    rows.push({
      sessions,
      direct,
      proxy: viaProxy,
      gateway: viaGateway,
      gateway2026: viaGateway2026,
      addedMsProxy: round(viaProxy.p50Ms - direct.p50Ms, 3),
      addedMsGateway: round(viaGateway.p50Ms - direct.p50Ms, 3),
      throughputProxy: round(viaProxy.callsPerSecond / direct.callsPerSecond, 2),
      throughputGateway: round(viaGateway.callsPerSecond / direct.callsPerSecond, 2),
      addedMsGateway2026: round(viaGateway2026.p50Ms - direct.p50Ms, 3),
      throughputGateway2026: round(viaGateway2026.callsPerSecond / direct.callsPerSecond, 2),
    });
  }
  report.httpHop = rows;
  await gw.stop();
}

/** 2. The same against a stdio upstream: Conflux to stdio vs a client speaking stdio directly. */
async function stdioHop(): Promise<void> {
  const gw = await gateway({ echo: { command: process.execPath, args: upstreams('stdio'), cwd: ROOT, prefix: '' } });
  const direct = await StdioClient.start(process.execPath, upstreams('stdio'), ROOT);
  const rows = [];
  for (const sessions of CONCURRENCY) {
    const viaStdio = await runLoad(sessions, SECONDS, WARMUP, async () => ({
      call: () => direct.request('tools/call', { name: 'echo', arguments: { text: 'hello' } }),
      close: async () => {},
    }));
    const viaGateway = await runLoad(sessions, SECONDS, WARMUP, httpClient(gw.url));
    check(`stdio direct x${sessions}`, viaStdio);
    check(`stdio gateway x${sessions}`, viaGateway);
    rows.push({ sessions, direct: viaStdio, gateway: viaGateway, throughputGateway: round(viaGateway.callsPerSecond / viaStdio.callsPerSecond, 2) });
  }
  await direct.stop();
  report.stdioHop = rows;
  await gw.stop();
}

/** 3. tools/list of a big catalog (100 upstreams x 50 tools), and tool search over it. */
async function bigCatalog(): Promise<void> {
  const endpoints = quick ? 20 : 100;
  const host = await start(upstreams('http', { endpoints, tools: 50 }));
  running.push(host);
  const servers = Object.fromEntries(Array.from({ length: endpoints }, (_, i) => [`svc${i}`, { url: `${host.url}/mcp/${i}`, required: true }]));
  const gw = await gateway(servers, { pageSize: 10_000, broadcast: { enabled: false, concurrency: 16 } });
  const session = await Session.open(gw.url);
  const times: number[] = [];
  let bytes = 0;
  let tools = 0;
  let errors = 0;
  for (let i = 0; i < (quick ? 20 : 200); i++) {
    const started = performance.now();
    try {
      const body = await session.call('tools/list', {});
      times.push(performance.now() - started);
      bytes = Buffer.byteLength(body);
      tools = (body.match(/"inputSchema"/g) ?? []).length;
    } catch {
      errors++;
    }
  }
  const searches: number[] = [];
  for (let i = 0; i < (quick ? 20 : 200); i++) {
    const started = performance.now();
    try {
      await session.call('tools/call', { name: 'conflux__search_tools', arguments: { query: `export invoice service ${i % endpoints}`, limit: 10 } });
      searches.push(performance.now() - started);
    } catch {
      errors++;
    }
  }
  check('tools/list', { errors });
  if (tools !== endpoints * 50) problems.push(`tools/list returned ${tools} tools, expected ${endpoints * 50}`);
  report.bigCatalog = { upstreams: endpoints, tools, bytes, list: percentiles(times), search: percentiles(searches) };
  await session.close();
  await gw.stop();
}

/** 4. Memory per idle session and the initialize rate. */
async function idleSessions(): Promise<void> {
  const gw = await gateway({});
  const rows = [];
  let held: Session[] = [];
  for (const target of quick ? [1000] : [1000, 10_000]) {
    await new Promise((r) => setTimeout(r, 1000));
    const before = gw.rssKib();
    const heapBefore = await heapUsed(gw.url);
    const started = performance.now();
    let errors = 0;
    const open = async (count: number) => {
      for (let i = 0; i < count; i++) {
        try {
          held.push(await Session.open(gw.url));
        } catch {
          errors++;
        }
      }
    };
    const need = target - held.length;
    await Promise.all(Array.from({ length: 32 }, (_, k) => open(Math.floor(need / 32) + (k < need % 32 ? 1 : 0))));
    const seconds = (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const after = gw.rssKib();
    const heapAfter = await heapUsed(gw.url);
    const health = (await (await fetch(gw.url.replace(/\/mcp$/, '/health'))).json()) as { sessions: number };
    check(`sessions ${target}`, { errors });
    if (health.sessions !== target) problems.push(`sessions: the gateway holds ${health.sessions}, expected ${target}`);
    rows.push({
      sessions: health.sessions,
      opened: need,
      initializePerSecond: round(need / seconds),
      rssMiB: round(after / 1024),
      rssKibPerSession: round((after - before) / need, 2),
      heapKibPerSession: round((heapAfter - heapBefore) / 1024 / need, 2),
    });
  }
  await Promise.all(held.map((s) => s.close()));
  held = [];
  report.idleSessions = rows;
  await gw.stop();
}

/** The gateway's V8 heap in use, from its own /metrics. */
async function heapUsed(mcpUrl: string): Promise<number> {
  const text = await (await fetch(mcpUrl.replace(/\/mcp$/, '/metrics'))).text();
  return Number(/^conflux_nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1] ?? 0);
}

/** 5. Broadcast to many upstreams that each answer after 20 ms. */
async function broadcastFanOut(): Promise<void> {
  const endpoints = quick ? 10 : 50;
  const host = await start(upstreams('http', { endpoints, delayMs: 20 }));
  running.push(host);
  const servers = Object.fromEntries(Array.from({ length: endpoints }, (_, i) => [`svc${i}`, { url: `${host.url}/mcp/${i}`, required: true }]));
  const gw = await gateway(servers, { broadcast: { enabled: true, concurrency: 256 } });
  const session = await Session.open(gw.url);
  const times: number[] = [];
  let errors = 0;
  for (let i = 0; i < (quick ? 10 : 100); i++) {
    const started = performance.now();
    try {
      const body = await session.call('tools/call', { name: 'broadcast__echo', arguments: { text: 'hi' } });
      if (!body.includes(`"succeeded":${endpoints}`)) throw new Error(body.slice(0, 200));
      times.push(performance.now() - started);
    } catch {
      errors++;
    }
  }
  // The baseline: the same fan-out made by the client itself, straight to the upstreams. Its
  // time is how long the slowest of them takes to answer when all are asked at once (their
  // host serves them all on one event loop, so that is more than the 20 ms they wait).
  const direct = await Promise.all(Array.from({ length: endpoints }, (_, i) => Session.open(`${host.url}/mcp/${i}`)));
  const directTimes: number[] = [];
  for (let i = 0; i < (quick ? 10 : 100); i++) {
    const started = performance.now();
    try {
      await Promise.all(direct.map((s) => s.call('tools/call', { name: 'echo', arguments: { text: 'hi' } })));
      directTimes.push(performance.now() - started);
    } catch {
      errors++;
    }
  }
  check('broadcast', { errors });
  const p = percentiles(times);
  const slowest = percentiles(directTimes);
  report.broadcast = { upstreams: endpoints, upstreamDelayMs: 20, ...p, direct: slowest, overSlowestMs: round(p.p50Ms - slowest.p50Ms, 3) };
  await Promise.all(direct.map((s) => s.close()));
  await session.close();
  await gw.stop();
}

/**
 * 7. Peer gateways from npm, each against Conflux's numbers of the same run. supergateway on
 * workload 1's stdio variant (stateful Streamable HTTP in front of a stdio server; it starts one
 * server process per session) against workload 2; mcp-hub, which offers only the older
 * HTTP+SSE transport downstream, on workload 1 itself against workload 1. Full runs only.
 */
async function peers(): Promise<void> {
  await supergateway();
  await mcpHub();
}

async function supergateway(): Promise<void> {
  const entry = join(ROOT, 'node_modules/supergateway/dist/index.js');
  const port = await freePort();
  const command = [process.execPath, ...upstreams('stdio')].map((part) => (part.includes(' ') ? `"${part}"` : part)).join(' ');
  const child = spawn(process.execPath, [entry, '--stdio', command, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none'], {
    cwd: ROOT,
    stdio: 'ignore',
    detached: true,
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  try {
    const deadline = performance.now() + 30_000;
    for (;;) {
      const session = await Session.open(url).catch(() => undefined);
      if (session) {
        await session.close();
        break;
      }
      if (performance.now() > deadline) throw new Error('supergateway did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    const rows = [];
    const conflux = (report.stdioHop ?? []) as { sessions: number; gateway: LoadResult }[];
    for (const sessions of CONCURRENCY) {
      // supergateway starts a server process per session: open them one at a time
      const result = await runLoad(sessions, SECONDS, WARMUP, httpClient(url), { openOneAtATime: true });
      check(`supergateway x${sessions}`, result);
      rows.push({ sessions, supergateway: result, conflux: conflux.find((r) => r.sessions === sessions)?.gateway });
    }
    report.peers = { ...(report.peers as object | undefined), supergateway: rows };
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // the gateway and the server processes it started
    } catch {
      // already gone
    }
  }
}

async function mcpHub(): Promise<void> {
  const upstream = await start(upstreams('http'));
  running.push(upstream);
  const dir = await mkdtemp(join(tmpdir(), 'conflux-bench-hub-'));
  await writeFile(join(dir, 'servers.json'), JSON.stringify({ mcpServers: { echo: { url: `${upstream.url}/mcp/0` } } }));
  const port = await freePort();
  // Its logs and workspace cache go under HOME / XDG_STATE_HOME: kept in the run's directory.
  const child = spawn(process.execPath, [join(ROOT, 'node_modules/mcp-hub/dist/cli.js'), '--port', String(port), '--config', join(dir, 'servers.json')], {
    cwd: dir,
    stdio: 'ignore',
    detached: true,
    env: { ...process.env, HOME: dir, XDG_STATE_HOME: dir, XDG_CONFIG_HOME: dir },
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  const tool = 'echo__echo';
  try {
    const deadline = performance.now() + 30_000;
    for (;;) {
      const session = await SseSession.open(url).catch(() => undefined);
      const listed = await session?.call('tools/list', {}).catch(() => '');
      await session?.close();
      if (listed?.includes(`"${tool}"`)) break;
      if (performance.now() > deadline) throw new Error('mcp-hub did not start or did not list the echo tool');
      await new Promise((r) => setTimeout(r, 200));
    }
    const rows = [];
    const conflux = (report.httpHop ?? []) as { sessions: number; gateway: LoadResult }[];
    for (const sessions of CONCURRENCY) {
      const result = await runLoad(sessions, SECONDS, WARMUP, async () => {
        const session = await SseSession.open(url);
        return { call: () => session.call('tools/call', { name: tool, arguments: { text: 'hello' } }), close: () => session.close() };
      });
      check(`mcp-hub x${sessions}`, result);
      rows.push({ sessions, mcpHub: result, conflux: conflux.find((r) => r.sessions === sessions)?.gateway });
    }
    report.peers = { ...(report.peers as object | undefined), mcpHub: rows };
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** 6. Start-up: time until /ready with many stdio upstreams. */
async function startUp(): Promise<void> {
  const count = quick ? 5 : 20;
  const servers = Object.fromEntries(
    Array.from({ length: count }, (_, i) => [`s${i}`, { command: process.execPath, args: upstreams('stdio'), cwd: ROOT, required: true, connectTimeout: 120 }]),
  );
  const started = performance.now();
  const gw = await gateway(servers);
  report.startUp = { stdioUpstreams: count, secondsToReady: round((performance.now() - started) / 1000, 2) };
  await gw.stop();
}

/**
 * 8. The cost of authentication and access rules: the same echo call through a gateway with
 * `auth: none` and through one that checks an HS256 token or an API key (looked up in the
 * embedded database) on every request, for a caller whose grants restrict its view.
 */
async function authCost(): Promise<void> {
  const upstream = await start(upstreams('http'));
  running.push(upstream);
  const servers = { echo: { url: `${upstream.url}/mcp/0`, prefix: '' } };
  const secret = 'bench-shared-secret-0123456789-abcdefghij';
  const open = await gateway(servers);
  const guarded = await gateway(servers, { auth: { jwt: { secret }, apiKeys: true }, access: { grants: [{ group: 'bench', servers: ['echo'] }] } });
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  const admin = await sign({ sub: 'bench-admin', groups: ['MCP-Admin'] });
  const created = await fetch(guarded.url.replace(/\/mcp$/, '/api/v1/api-keys'), {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench', groups: ['bench'] }),
  });
  if (created.status !== 201) throw new Error(`could not create an API key: ${created.status}`);
  const { key } = (await created.json()) as { key: string };
  const token = await sign({ sub: 'bench-user', groups: ['bench'] });
  const rows = [];
  for (const sessions of CONCURRENCY.slice(0, 2)) {
    const none = await runLoad(sessions, SECONDS, WARMUP, httpClient(open.url));
    const jwt = await runLoad(sessions, SECONDS, WARMUP, httpClient(guarded.url, 'echo', { authorization: `Bearer ${token}` }));
    const apiKey = await runLoad(sessions, SECONDS, WARMUP, httpClient(guarded.url, 'echo', { 'x-api-key': key }));
    for (const [name, r] of [['none', none], ['jwt', jwt], ['api key', apiKey]] as const) check(`auth ${name} x${sessions}`, r);
    rows.push({ sessions, none, jwt, apiKey, addedMsJwt: round(jwt.p50Ms - none.p50Ms, 3), addedMsApiKey: round(apiKey.p50Ms - none.p50Ms, 3) });
  }
  report.authCost = rows;
  await open.stop();
  await guarded.stop();
}

/** 9. Workers and replicas sharing PostgreSQL and Redis (bench/scale-out.ts); skipped, with a note, without them. */
async function scaleOutWorkload(): Promise<void> {
  const result = await scaleOut({ concurrency: quick ? [16] : CONCURRENCY, seconds: SECONDS, warmupSeconds: WARMUP, running });
  report.scaleOut = result;
  if ('skipped' in result) return void console.error(`scale-out: skipped, ${result.skipped}`);
  for (const row of result.rows) {
    for (const [name, r] of [['1 worker', row.oneWorker], ['2 workers', row.twoWorkers], ['1 replica', row.oneReplicaViaProxy], ['2 replicas', row.twoReplicasViaProxy]] as const) check(`scale-out ${name} x${row.sessions}`, r);
  }
}

const began = new Date();
try {
  for (const [name, workload] of [
    ['http hop', hopCost],
    ['stdio hop', stdioHop],
    ['big catalog', bigCatalog],
    ['idle sessions', idleSessions],
    ['broadcast', broadcastFanOut],
    ['start-up', startUp],
    ['auth', authCost],
    ['scale-out', scaleOutWorkload],
    ...(quick ? [] : ([['peers', peers]] as const)),
  ] as const) {
    if (only && !only.includes(name)) continue;
    const t = performance.now();
    try {
      await workload();
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
    console.error(`${name}: ${round((performance.now() - t) / 1000)} s`);
  }
} finally {
  await Promise.all(running.map((r) => r.stop()));
}

const machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, date: began.toISOString() };
const result = { machine, command: `npm run bench${quick ? ' -- --quick' : ''}`, quick, report, problems };
console.log(JSON.stringify(result, null, 2));
if (!only) {
  await writeFile(join(ROOT, 'bench/results', quick ? 'quick-latest.json' : `${began.toISOString().slice(0, 10)}.json`), `${JSON.stringify(result, null, 2)}\n`);
  if (!quick) await writeResults(join(ROOT, 'docs/benchmarks.md'), renderResults(result));
}
if (problems.length > 0) {
  console.error(`bench: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.error('bench: every workload completed with zero errors');


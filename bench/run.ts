/**
 * `npm run bench` (full, writes docs/benchmarks.md) or `npm run bench -- --quick` (a smoke run
 * that checks every workload completes with zero errors; it asserts no timings).
 * Every workload runs real processes on loopback and is compared with its baseline in the same
 * run; the hop workloads (1, 1b, 2) warm every target up and alternate between them in rounds
 * (bench/compare.ts).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareTargets, type CompareOptions, type ComparedLevel, type Target } from './compare.js';
import { runLoad, percentiles, round, Session, StatelessClient, type LoadResult } from './load.js';
import { killGroup, startMcpHub, startMcpProxy, startSupergateway, type RunningPeer } from './peers.js';
import { LEAN_UPSTREAM, ROOT, start, upstreams, waitReady, type Running } from './processes.js';
import { renderResults, writeResults } from './report.js';
import { scaleOut } from './scale-out.js';
import { SseSession } from './sse-session.js';
import { StdioClient } from './stdio-client.js';
import { SignJWT } from 'jose';

const quick = process.argv.includes('--quick');
/**
 * `--only "stdio hop,lean http hop"` runs just those workloads: its JSON goes to
 * bench/results/<date>-<workloads>.json, and docs/benchmarks.md is left as it is.
 */
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]!.split(',') : undefined;
const SECONDS = quick ? 1.5 : 8;
const WARMUP = quick ? 0.5 : 2;
const CONCURRENCY = quick ? [1, 16] : [1, 16, 64];
/** The hop workloads: each target warmed up first, then the best of alternating rounds (one in a smoke run). */
const COMPARE: CompareOptions = {
  concurrency: CONCURRENCY,
  rounds: quick ? 1 : 2,
  seconds: quick ? 1.5 : 6,
  settleSeconds: quick ? 0.3 : 1,
  warmUp: { sessions: 16, calls: quick ? 200 : 3000, maxSeconds: quick ? 1 : 10 },
};
const report: Record<string, unknown> = {};
const problems: string[] = [];
const running: Running[] = [];
/** Peers run in process groups of their own: a signal to the bench does not reach them, so they are killed by id. */
const peers = new Set<RunningPeer>();
/** The bench gateways' folders (config and embedded database, about 40 MiB each), removed at the end. */
const dirs: string[] = [];
/** How the bench gateways' embedded databases were made (each starts on a new data folder). */
const embeddedDatabases = { fromTemplate: 0, byInitdb: 0 };

/** Kills at once whatever is still running and removes the folders: for an exit the bench did not plan. */
function killNow(): void {
  for (const peer of peers) {
    killGroup(peer.group);
    if (peer.dir !== undefined) rmSync(peer.dir, { recursive: true, force: true });
  }
  for (const r of running) r.child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

process.once('exit', killNow);
let interrupted = false;
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    // A second signal does not wait for the first one's orderly stop.
    if (interrupted) process.exit(code);
    interrupted = true;
    console.error(`bench: ${signal}, stopping what it started`);
    for (const peer of peers) killGroup(peer.group);
    // Gateways stopped in order (SIGTERM) stop their stdio servers too; 'exit' removes the folders.
    void Promise.all(running.map((r) => r.stop())).finally(() => process.exit(code));
  });
}

async function gateway(servers: Record<string, unknown>, gatewaySettings: Record<string, unknown> = {}): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-bench-'));
  dirs.push(dir);
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
  const created = /"msg":"embedded database created in [\d.]+ s( from the template)?"/.exec(gw.startupLog);
  if (created) embeddedDatabases[created[1] ? 'fromTemplate' : 'byInitdb']++;
  return gw;
}

function check(name: string, result: LoadResult | { errors: number; firstError?: string }): void {
  if (result.errors > 0) problems.push(`${name}: ${result.errors} errors (${result.firstError ?? ''})`);
}

const echoCall = (session: Session, tool = 'echo') => () => session.call('tools/call', { name: tool, arguments: { text: 'hello' } });
const httpClient = (url: string, tool = 'echo', credentials: Record<string, string> = {}) => async () => {
  const session = await Session.open(url, credentials);
  return { call: echoCall(session, tool), close: () => session.close() };
};

/** A caller on the older HTTP+SSE transport (mcp-hub offers only that downstream). */
const sseClient = (url: string, tool: string) => async () => {
  const session = await SseSession.open(url);
  return { call: () => session.call('tools/call', { name: tool, arguments: { text: 'hello' } }), close: () => session.close() };
};

/** A 2026-07-28 caller: one stateless client per simulated session, nothing to open or close. */
const statelessClient = (url: string, tool = 'echo') => async () => {
  const client = new StatelessClient(url);
  return { call: () => client.call('tools/call', { name: tool, arguments: { text: 'hello' } }), close: async () => {} };
};

let hopSetup: Promise<{ gw: Running; sdk: Running; lean: Running }> | undefined;

/**
 * The upstreams and the one gateway of workloads 1, 1b and 2. One gateway serves all three
 * (with a prefix each, so their tools differ in name only): creating a gateway's embedded
 * database is most of its start, and an upstream connection that is not called costs nothing.
 */
function hops(): Promise<{ gw: Running; sdk: Running; lean: Running }> {
  hopSetup ??= (async () => {
    const sdk = await start(upstreams('http'));
    running.push(sdk);
    const lean = await start(LEAN_UPSTREAM);
    running.push(lean);
    const gw = await gateway({
      echo: { url: `${sdk.url}/mcp/0`, prefix: '' },
      lean: { url: `${lean.url}/mcp/0`, prefix: 'lean' },
      stdio: { command: process.execPath, args: upstreams('stdio'), cwd: ROOT, prefix: 'stdio' },
    });
    return { gw, sdk, lean };
  })();
  return hopSetup;
}

async function stopHops(): Promise<void> {
  const setup = await hopSetup?.catch(() => undefined);
  hopSetup = undefined;
  if (setup) await Promise.all([setup.gw.stop(), setup.sdk.stop(), setup.lean.stop()]);
}

async function byteProxy(target: string): Promise<Running> {
  const proxy = await start(['--import', 'tsx', 'bench/byte-proxy.ts', target]);
  running.push(proxy);
  return proxy;
}

/** A started peer, known to the signal handlers until it is stopped. */
async function tracked(launch: () => Promise<RunningPeer>): Promise<RunningPeer> {
  const started = await launch();
  peers.add(started);
  return {
    ...started,
    stop: async () => {
      await started.stop();
      peers.delete(started);
    },
  };
}

/** A peer that fails to start is reported as a problem and left out of the comparison. */
async function peer(name: string, launch: () => Promise<RunningPeer>): Promise<RunningPeer | undefined> {
  if (quick) return undefined;
  try {
    return await tracked(launch);
  } catch (error) {
    problems.push(`${name}: ${(error as Error).message}`);
    return undefined;
  }
}

const cap = (name: string) => name[0]!.toUpperCase() + name.slice(1);

/**
 * One row of a compared workload: each target's best round, its added p50 and throughput
 * against `direct`, and every round as measured. Errors in any round are problems.
 */
function comparedRow(workload: string, level: ComparedLevel): Record<string, unknown> {
  for (const [name, results] of Object.entries(level.rounds)) results.forEach((r, i) => check(`${workload} ${name} x${level.sessions} round ${i + 1}`, r));
  const direct = level.best.direct!;
  const against = Object.entries(level.best)
    .filter(([name]) => name !== 'direct')
    .flatMap(([name, r]) => [
      [`addedMs${cap(name)}`, round(r.p50Ms - direct.p50Ms, 3)],
      [`throughput${cap(name)}`, round(r.callsPerSecond / direct.callsPerSecond, 2)],
    ]);
  return { sessions: level.sessions, ...level.best, ...Object.fromEntries(against), rounds: level.rounds };
}

/**
 * 1. tools/call on the SDK's Streamable HTTP upstream: direct, through the byte proxy, through
 * Conflux (a 2025-11-25 session and a sessionless 2026-07-28 client) and, in full runs, through
 * mcp-hub (HTTP+SSE downstream).
 */
async function httpHop(): Promise<void> {
  const { gw, sdk } = await hops();
  const proxy = await byteProxy(sdk.url);
  // mcp-hub breaks down as sessions come and go: after about 35 sessions its log held 219,000
  // "client disconnected" lines and "Maximum call stack size exceeded" on closing them, and its
  // connections hung up. Each of its measurements gets a fresh process, so what is measured is
  // its cost per call.
  let hub: RunningPeer | undefined;
  const hubTarget: Target = {
    name: 'mcpHub',
    open: async () => sseClient(hub!.url, 'echo__echo')(),
    // its event streams open one at a time: a burst of them timed out on a busy host
    openOneAtATime: true,
    prepare: async () => {
      await hub?.stop();
      hub = undefined;
      hub = await tracked(() => startMcpHub(`${sdk.url}/mcp/0`));
    },
  };
  try {
    const levels = await compareTargets(
      [
        { name: 'direct', open: httpClient(`${sdk.url}/mcp/0`), cpu: sdk.cpuMs },
        { name: 'proxy', open: httpClient(`${proxy.url}/mcp/0`), cpu: proxy.cpuMs },
        { name: 'gateway', open: httpClient(gw.url), cpu: gw.cpuMs },
        { name: 'gateway2026', open: statelessClient(gw.url), cpu: gw.cpuMs },
        ...(quick ? [] : [hubTarget]),
      ],
      COMPARE,
    );
    report.httpHop = levels.map((level) => comparedRow('http', level));
  } finally {
    await hub?.stop();
    await proxy.stop();
  }
}

/** 1b. The same on the lean upstream (bench/lean-upstream.ts), which costs next to nothing per call. */
async function leanHop(): Promise<void> {
  const { gw, lean } = await hops();
  const proxy = await byteProxy(lean.url);
  try {
    const levels = await compareTargets(
      [
        { name: 'direct', open: httpClient(`${lean.url}/mcp/0`), cpu: lean.cpuMs },
        { name: 'proxy', open: httpClient(`${proxy.url}/mcp/0`), cpu: proxy.cpuMs },
        { name: 'gateway', open: httpClient(gw.url, 'lean__echo'), cpu: gw.cpuMs },
      ],
      COMPARE,
    );
    report.leanHop = levels.map((level) => comparedRow('lean http', level));
  } finally {
    await proxy.stop();
  }
}

/**
 * 2. A stdio upstream: a client speaking stdio to it directly, Conflux, and, in full runs, the
 * peers that put a stdio server behind Streamable HTTP (supergateway, mcp-proxy).
 */
async function stdioHop(): Promise<void> {
  const { gw } = await hops();
  const command = [process.execPath, ...upstreams('stdio')];
  const direct = await StdioClient.start(process.execPath, upstreams('stdio'), ROOT);
  const supergateway = await peer('supergateway', () => startSupergateway(command));
  const mcpProxy = await peer('mcp-proxy', () => startMcpProxy(command));
  try {
    const levels = await compareTargets(
      [
        { name: 'direct', open: async () => ({ call: () => direct.request('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: async () => {} }) },
        { name: 'gateway', open: httpClient(gw.url, 'stdio__echo'), cpu: gw.cpuMs },
        // supergateway starts a server process per session: they are opened one at a time
        ...(supergateway ? [{ name: 'supergateway', open: httpClient(supergateway.url), openOneAtATime: true }] : []),
        ...(mcpProxy ? [{ name: 'mcpProxy', open: httpClient(mcpProxy.url) }] : []),
      ],
      COMPARE,
    );
    report.stdioHop = levels.map((level) => comparedRow('stdio', level));
  } finally {
    await supergateway?.stop();
    await mcpProxy?.stop();
    await direct.stop();
  }
}

/** 3. tools/list of a big catalog (100 upstreams x 50 tools), and tool search over it. */
async function bigCatalog(): Promise<void> {
  const endpoints = quick ? 20 : 100;
  const host = await start(upstreams('http', { endpoints, tools: 50 }));
  running.push(host);
  const servers = Object.fromEntries(Array.from({ length: endpoints }, (_, i) => [`svc${i}`, { url: `${host.url}/mcp/${i}`, required: true }]));
  const gw = await gateway(servers, { pageSize: 10_000, broadcast: { enabled: false, concurrency: 16 } });
  const session = await Session.open(gw.url);
  // To the answer's last byte: decoding 1.2 MB into a string is the client's own work, which
  // took this lean client longer than the gateway took to answer; it is reported beside.
  const times: number[] = [];
  const decoded: number[] = [];
  let bytes = 0;
  let tools = 0;
  let errors = 0;
  for (let i = 0; i < (quick ? 20 : 200); i++) {
    const started = performance.now();
    try {
      const { json: body, receivedAt } = await session.exchange('tools/list', {});
      times.push(receivedAt - started);
      decoded.push(performance.now() - started);
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
  report.bigCatalog = { upstreams: endpoints, tools, bytes, list: percentiles(times), listDecoded: percentiles(decoded), search: percentiles(searches) };
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
/** The host's one-minute load average: other work on a shared machine moves every figure. */
const loadAtStart = round(loadavg()[0]!, 2);
const workloads = (
  [
    ['http hop', httpHop],
    ['lean http hop', leanHop],
    ['stdio hop', stdioHop],
    ['big catalog', bigCatalog],
    ['idle sessions', idleSessions],
    ['broadcast', broadcastFanOut],
    ['start-up', startUp],
    ['auth', authCost],
    ['scale-out', scaleOutWorkload],
  ] as const
).filter(([name]) => !only || only.includes(name));
const HOPS: readonly string[] = ['http hop', 'lean http hop', 'stdio hop'];
try {
  for (const [index, [name, workload]] of workloads.entries()) {
    const t = performance.now();
    try {
      await workload();
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
    // The hop workloads' gateway and upstreams are not left running beside the others.
    if (HOPS.includes(name) && !workloads.slice(index + 1).some(([next]) => HOPS.includes(next))) await stopHops();
    console.error(`${name}: ${round((performance.now() - t) / 1000)} s`);
  }
} finally {
  await Promise.all(running.map((r) => r.stop()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

const machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, date: began.toISOString(), loadAverage: { atStart: loadAtStart, atEnd: round(loadavg()[0]!, 2) } };
const compare = { rounds: COMPARE.rounds, seconds: COMPARE.seconds, warmUpCalls: COMPARE.warmUp.calls, warmUpMaxSeconds: COMPARE.warmUp.maxSeconds };
const flags = process.argv.slice(2).map((arg) => (arg.includes(' ') || arg.includes(',') ? `"${arg}"` : arg)).join(' ');
const result = { machine, command: `npm run bench${flags ? ` -- ${flags}` : ''}`, quick, compare, embeddedDatabases, report, problems };
console.log(JSON.stringify(result, null, 2));
// A smoke run keeps only its latest JSON (git ignores it); a measuring run keeps every round, and
// only a full one rewrites docs/benchmarks.md.
const slug = (name: string) => name.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-');
const resultsFile = quick ? (only ? undefined : 'quick-latest.json') : `${began.toISOString().slice(0, 10)}${only ? `-${only.map(slug).join('+')}` : ''}.json`;
if (resultsFile) await writeFile(join(ROOT, 'bench/results', resultsFile), `${JSON.stringify(result, null, 2)}\n`);
if (!quick && !only) await writeResults(join(ROOT, 'docs/benchmarks.md'), renderResults(result));
if (problems.length > 0) {
  console.error(`bench: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.error('bench: every workload completed with zero errors');


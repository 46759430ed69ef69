/**
 * Interleaved A/B comparison of gateway builds by the CPU time they spend per call, which holds
 * on a busy host where throughput does not: each build is a directory holding its own `dist/`
 * (with `node_modules` and `drizzle` beside it), all run at once behind one upstream, warmed
 * up, then measured round after round in alternating order, with the upstream called directly
 * as a further target (for the latency a hop adds).
 *
 *   npx tsx bench/ab.ts --builds before=/path/a,after=/path/b [--sessions 1,16] [--rounds 6] [--seconds 5] [--sdk] [--proxy]
 *       [--stateless | --stateless:NAME] ['{"audit": {"enabled": false}}'] [--settings:after '{"audit": {"enabled": false}}']
 *
 * The upstream is the lean one of workload 1b (`--sdk`: the SDK's Streamable HTTP server);
 * `--proxy` adds the byte proxy as a reference. `--stateless` calls the gateways as 2026-07-28
 * clients (`StatelessClient`: no session, the envelope and standard headers on every request)
 * instead of over 2025-11-25 sessions, `--stateless:NAME` that build only (name one directory
 * twice to compare the two eras in one run); the upstream and the proxy are still called over
 * sessions. A JSON argument is merged into every
 * gateway's settings, and `--settings:NAME JSON` into that build's only (one build directory may
 * be named twice, to compare settings). Prints every round, then for each target and concurrency the median and
 * lowest CPU per call (ms, user plus system of the gateway process, all threads), median p50
 * and median calls/s.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { roundOrder, warmUp, type Target } from './compare.js';
import { round, runLoad, Session, StatelessClient, type LoadResult } from './load.js';
import { LEAN_UPSTREAM, start, upstreams, type Running } from './processes.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
/** `name=dir` (or just `dir`, named by its place in the list). */
const builds = option('--builds', '')
  .split(',')
  .filter(Boolean)
  .map((b, i) => (b.includes('=') ? { name: b.slice(0, b.indexOf('=')), dir: b.slice(b.indexOf('=') + 1) } : { name: `build${i + 1}`, dir: b }));
if (builds.length === 0) throw new Error('usage: ab.ts --builds NAME=DIR[,NAME=DIR...]');
const levels = option('--sessions', '1,16').split(',').map(Number);
const rounds = Number(option('--rounds', '6'));
const seconds = Number(option('--seconds', '5'));
const settingsOf = new Set(args.flatMap((a, i) => (a.startsWith('--settings:') ? [i + 1] : [])));
const extra = JSON.parse(args.find((a, i) => a.startsWith('{') && !settingsOf.has(i)) ?? '{}') as Record<string, unknown>;
const own = (name: string) => JSON.parse(option(`--settings:${name}`, '{}')) as Record<string, unknown>;

const running: Running[] = [];
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

try {
  const upstream = await start(args.includes('--sdk') ? upstreams('http') : LEAN_UPSTREAM);
  running.push(upstream);
  const client = (url: string) => async () => {
    const session = await Session.open(url);
    return { call: () => session.call('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: () => session.close() };
  };
  /** A 2026-07-28 caller: one stateless client per simulated session, nothing to open or close. */
  const stateless = (url: string) => async () => {
    const caller = new StatelessClient(url);
    return { call: () => caller.call('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: async () => {} };
  };
  const gatewayClient = (name: string) => (args.includes('--stateless') || args.includes(`--stateless:${name}`) ? stateless : client);
  const targets: Target[] = [{ name: 'direct', open: client(`${upstream.url}/mcp/0`), cpu: upstream.cpuMs }];
  if (args.includes('--proxy')) {
    const proxy = await start(['--import', 'tsx', 'bench/byte-proxy.ts', upstream.url]);
    running.push(proxy);
    targets.push({ name: 'proxy', open: client(`${proxy.url}/mcp/0`), cpu: proxy.cpuMs });
  }
  for (const { name, dir: build } of builds) {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-ab-'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        gateway: { port: 0, limits: { maxSessionsPerPrincipal: 20_000, maxSessions: 20_000 }, healthCheck: { intervalSeconds: 0 }, ...extra, ...own(name) },
        servers: { echo: { url: `${upstream.url}/mcp/0`, prefix: '' } },
      }),
    );
    const gw = await start([join(build, 'dist/cli.js'), 'serve', '--config', join(dir, 'config.json'), '--port', '0'], { LOG_LEVEL: 'info', CONFLUX_DATA_DIR: join(dir, 'data') }, 180_000);
    running.push(gw);
    targets.push({ name, open: gatewayClient(name)(gw.url), cpu: gw.cpuMs });
  }
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; warming up`);
  for (const target of targets) await warmUp(target, { sessions: 16, calls: 5000, maxSeconds: 15 });
  const results = new Map<string, LoadResult[]>();
  for (const sessions of levels) {
    for (let r = 0; r < rounds; r++) {
      for (const target of roundOrder(targets, r)) {
        const result = await runLoad(sessions, seconds, 1, target.open, { cpu: target.cpu! });
        if (result.errors > 0) throw new Error(`${target.name}: ${result.errors} errors (${result.firstError})`);
        const key = `${target.name} x${sessions}`;
        results.set(key, [...(results.get(key) ?? []), result]);
        console.log(`round ${r + 1} ${key}: ${result.cpuMsPerCall} ms CPU/call, p50 ${result.p50Ms} ms, ${result.callsPerSecond} calls/s`);
      }
    }
  }
  console.log(`\nload average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('target | sessions | CPU ms/call median (min) | p50 ms median | calls/s median');
  for (const [key, list] of results) {
    const cpu = list.map((r) => r.cpuMsPerCall!);
    console.log(`${key.replace(/ x(\d+)$/, ' | $1')} | ${round(median(cpu), 3)} (${round(Math.min(...cpu), 3)}) | ${round(median(list.map((r) => r.p50Ms)), 3)} | ${round(median(list.map((r) => r.callsPerSecond)), 0)}`);
  }
} finally {
  await Promise.all(running.map((r) => r.stop()));
}

/**
 * Profiles the gateway's hot path: sessions calling an echo tool through Conflux for 6 s, with
 * the gateway under `--cpu-prof`, then prints where its CPU time went during the load, by
 * component.
 *
 *   npm run build && npx tsx bench/profile-hop.ts [--stdio | --lean] [--stateless] [--sessions 16] [--seconds 6] [--build DIR] ['{"audit": {"enabled": false}}']
 *
 * The upstream is the SDK's Streamable HTTP server, or the lean one of workload 1b with
 * `--lean` (bench/lean-upstream.ts: it costs next to nothing, so the gateway is the only busy
 * process besides the client), or a stdio server with `--stdio`; a JSON argument is merged into
 * the gateway section of the config, to compare settings; `--build DIR` runs the gateway of
 * another build (a directory with its own `dist/`, as bench/ab.ts takes); `--stateless` calls as a
 * 2026-07-28 client (no session, the envelope in every request). After the components
 * it lists the functions with the most self time during the load.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runLoad, Session, StatelessClient, type LoadResult } from './load.js';
import { LEAN_UPSTREAM, ROOT, start, upstreams, type Running } from './processes.js';

interface Profile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const stdio = args.includes('--stdio');
const lean = args.includes('--lean');
const stateless = args.includes('--stateless');
const sessions = args.includes('--sessions') ? Number(args[args.indexOf('--sessions') + 1]) : 16;
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 6;
// Absolute, as the profile's script URLs are: a relative one would match none of them.
const build = resolve(args.includes('--build') ? args[args.indexOf('--build') + 1]! : ROOT);
const extra = JSON.parse(args.find((a) => a.startsWith('{')) ?? '{}') as Record<string, unknown>;
const dir = await mkdtemp(join(tmpdir(), 'conflux-profile-'));
const profiles = join(dir, 'profiles');
let upstream: Running | undefined;
let gateway: Running | undefined;
let result: LoadResult;
let loadFrom: number;
let loadTo: number;
let profile: Profile;
try {
  upstream = stdio ? undefined : await start(lean ? LEAN_UPSTREAM : upstreams('http'));
  const server = upstream ? { url: `${upstream.url}/mcp/0` } : { command: process.execPath, args: upstreams('stdio'), cwd: ROOT };
  await writeFile(join(dir, 'config.json'), JSON.stringify({ gateway: { port: 0, healthCheck: { intervalSeconds: 0 }, ...extra }, servers: { echo: { ...server, prefix: '' } } }));
  const spawned = performance.now();
  const gw = await start(['--cpu-prof', '--cpu-prof-dir', profiles, join(build, 'dist/cli.js'), 'serve', '--config', join(dir, 'config.json'), '--port', '0'], {
    LOG_LEVEL: 'info',
    CONFLUX_DATA_DIR: join(dir, 'data'),
  });
  gateway = gw;
  await new Promise((r) => setTimeout(r, 1500));
  loadFrom = performance.now() - spawned;
  result = await runLoad(sessions, seconds, 1, async () => {
    if (stateless) {
      const client = new StatelessClient(gw.url);
      return { call: () => client.call('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: async () => {} };
    }
    const session = await Session.open(gw.url);
    return { call: () => session.call('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: () => session.close() };
  });
  loadTo = performance.now() - spawned;
  await gw.stop(); // the profile is written as it exits
  profile = JSON.parse(await readFile(join(profiles, (await readdir(profiles))[0]!), 'utf8')) as Profile;
} finally {
  await gateway?.stop();
  await upstream?.stop();
  await rm(dir, { recursive: true, force: true });
}
console.log(`${sessions} ${stateless ? '2026-07-28 callers' : 'sessions'} (${stdio ? 'stdio' : lean ? 'lean Streamable HTTP' : 'Streamable HTTP'} upstream): p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, ${result.callsPerSecond} calls/s, ${result.errors} errors`);

const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
const component = ({ functionName, url }: { functionName: string; url: string }): string => {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (url.includes('pglite') || url.startsWith('wasm')) return 'PGlite (audit writes, start-up)';
  if (url.includes('undici')) return 'undici (fetch, upstream HTTP)';
  if (url.includes('@modelcontextprotocol/sdk')) return 'MCP SDK';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.includes('/dist/')) return 'conflux';
  if (url.startsWith('node:internal/webstreams') || url.includes('js_transferable')) return 'web streams';
  if (url.startsWith('node:')) return `node ${url.replace(/^node:(internal\/)?/, '').split('/').slice(0, 2).join('/')}`;
  return `native ${functionName}`;
};
// Only samples taken while the load ran (the profile's clock starts with the process, give or
// take its boot), so start-up work such as PGlite's does not hide in the shares.
const time = new Map<string, number>();
const selfTime = new Map<string, number>();
let at = 0;
profile.samples.forEach((id, i) => {
  at += (profile.timeDeltas[i] ?? 0) / 1000;
  if (at < loadFrom || at > loadTo) return;
  const frame = frames.get(id)!;
  const key = component(frame);
  time.set(key, (time.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  if (key === 'idle') return;
  // One function may appear as several nodes (one per call path): summed by name and place.
  const place = frame.url ? `${frame.url.replace(`file://${join(build, '/')}`, '')}:${frame.lineNumber + 1}` : '';
  const fn = `${frame.functionName || '(anonymous)'} ${place}`.trim();
  selfTime.set(fn, (selfTime.get(fn) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const busy = [...time].filter(([k]) => k !== 'idle').reduce((sum, [, v]) => sum + v, 0);
console.log(`gateway CPU busy during the load: ${Math.round(busy / 1000)} ms of ${Math.round(loadTo - loadFrom)} ms`);
for (const [key, value] of [...time].filter(([k]) => k !== 'idle').sort((a, b) => b[1] - a[1]).slice(0, 20)) {
  console.log(`${((100 * value) / busy).toFixed(1).padStart(5)}%  ${key}`);
}
// Sampling is by wall time: a thread preempted inside a system call is counted there. On a
// busy host `writev` (the sender woken peer runs first) holds such waits as well as its work.
const ranked = [...selfTime].sort((a, b) => b[1] - a[1]);
const show = ([fn, value]: [string, number]) => console.log(`${((100 * value) / busy).toFixed(1).padStart(5)}%  ${fn}`);
console.log('\nfunctions with the most self time:');
ranked.slice(0, 15).forEach(show);
console.log('\nof them in Conflux (dist/):');
ranked.filter(([fn]) => fn.includes(' dist/')).slice(0, 10).forEach(show);

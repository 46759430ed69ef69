/**
 * Instructions the gateway executes per `tools/call`, counted by valgrind's callgrind: a figure
 * that, unlike time, does not move with the host's load, for comparing builds a few percent
 * apart. The gateway runs under callgrind with collection off; after a warm-up, collection is
 * switched on (`callgrind_control -i on`) for a fixed number of calls and off again.
 *
 *   npx tsx bench/instructions-per-call.ts [--build DIR] [--sessions 16] [--warm-up 4000] [--calls 2000] [--stateless] ['{"audit": {"enabled": false}}']
 *
 * The upstream is the lean one of workload 1b; `--build DIR` runs the gateway of another build (a
 * directory with its own `dist/`, as bench/ab.ts takes); `--stateless` calls as 2026-07-28
 * clients (`StatelessClient`) instead of over 2025-11-25 sessions. Under callgrind the gateway runs some 50
 * times slower, so its start takes minutes. Prints the instructions (Ir) per call, all threads.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Session, StatelessClient } from './load.js';
import { LEAN_UPSTREAM, ROOT, start } from './processes.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const build = option('--build', ROOT);
const sessions = Number(option('--sessions', '16'));
const warmUpCalls = Number(option('--warm-up', '4000'));
const calls = Number(option('--calls', '2000'));
const stateless = args.includes('--stateless');
const extra = JSON.parse(args.find((a) => a.startsWith('{')) ?? '{}') as Record<string, unknown>;

const dir = await mkdtemp(join(tmpdir(), 'conflux-callgrind-'));
const upstream = await start(LEAN_UPSTREAM);
await writeFile(
  join(dir, 'config.json'),
  JSON.stringify({ gateway: { port: 0, healthCheck: { intervalSeconds: 0 }, ...extra }, servers: { echo: { url: `${upstream.url}/mcp/0`, prefix: '' } } }),
);
const gateway = spawn(
  'valgrind',
  ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(dir, 'callgrind.out.%p')}`, process.execPath, join(build, 'dist/cli.js'), 'serve', '--config', join(dir, 'config.json'), '--port', '0'],
  { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', CONFLUX_DATA_DIR: join(dir, 'data') }, stdio: ['ignore', 'ignore', 'pipe'] },
);
try {
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start under callgrind in 15 minutes')), 900_000);
    createInterface({ input: gateway.stderr! }).on('line', (line) => {
      const match = /"msg":"Conflux listening on (http:[^"]+)"/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    gateway.once('exit', (code) => reject(new Error(`the gateway exited with ${code}`)));
  });
  const clients: { call: Session['call']; close(): Promise<void> }[] = stateless
    ? Array.from({ length: sessions }, () => {
        const client = new StatelessClient(url);
        return { call: (method: string, params: unknown) => client.call(method, params as Record<string, unknown>), close: async () => {} };
      })
    : await Promise.all(Array.from({ length: sessions }, () => Session.open(url)));
  // The listener is up before the upstream is connected (slowly, under callgrind): wait for its tool.
  for (;;) {
    const listed = await clients[0]!.call('tools/list', {});
    if (listed.includes('"echo"')) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const run = async (total: number) => {
    let left = total;
    await Promise.all(
      clients.map(async (session) => {
        while (left-- > 0) await session.call('tools/call', { name: 'echo', arguments: { text: 'hello' } });
      }),
    );
  };
  await run(warmUpCalls);
  execFileSync('callgrind_control', ['-i', 'on', String(gateway.pid)], { stdio: 'ignore' });
  await run(calls);
  execFileSync('callgrind_control', ['-i', 'off', String(gateway.pid)], { stdio: 'ignore' });
  await Promise.all(clients.map((c) => c.close()));
} finally {
  const exited = new Promise((r) => gateway.once('exit', r));
  gateway.kill('SIGTERM');
  await exited;
  await upstream.stop();
}
// One file per process (the gateway's own children, if any, write theirs too): the gateway's is its pid's.
const file = (await readdir(dir)).find((f) => f === `callgrind.out.${gateway.pid}`);
if (!file) throw new Error(`no callgrind output in ${dir}`);
// `totals` holds what was collected (`summary` stays 0 when collection starts switched off).
const totals = /^totals: (\d+)/m.exec(await readFile(join(dir, file), 'utf8'));
if (!totals) throw new Error(`no totals in ${join(dir, file)}`);
console.log(`${build}: ${Math.round(Number(totals[1]) / calls)} instructions per call (${calls} calls from ${sessions} ${stateless ? '2026-07-28 callers' : 'sessions'} after ${warmUpCalls} to warm up; ${join(dir, file)})`);

/**
 * Interleaved A/B of builds on the big catalog of workload 3 (100 upstreams x 50 tools):
 * `tools/list` latency (to the answer's last byte, and decoded) and the gateway's CPU per list,
 * three alternating rounds.
 *
 *   npx tsx bench/catalog-ab.ts before=/path/a after=/path/b
 *
 * Each argument names a directory with its own `dist/` (as bench/ab.ts takes): a checkout of
 * another commit built with `npx tsc -p tsconfig.build.json`, with this node_modules linked in.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, upstreams, waitReady, type Running } from './processes.js';
import { percentiles, Session } from './load.js';

const builds = process.argv.slice(2).map((arg) => {
  const [name, dir] = arg.split('=');
  if (!name || !dir) throw new Error('usage: catalog-ab.ts NAME=DIR [NAME=DIR ...]');
  return { name, dir };
});
const host = await start(upstreams('http', { endpoints: 100, tools: 50 }));
const results: Record<string, number[]> = {};
try {
  for (let round = 0; round < 3; round++) {
    for (const b of round % 2 ? [...builds].reverse() : builds) {
      const dir = await mkdtemp(join(tmpdir(), 'cat-ab-'));
      const servers = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`svc${i}`, { url: `${host.url}/mcp/${i}`, required: true }]));
      await writeFile(join(dir, 'c.json'), JSON.stringify({ gateway: { port: 0, pageSize: 10000, broadcast: { enabled: false, concurrency: 16 }, healthCheck: { intervalSeconds: 0 } }, servers }));
      let gw: Running | undefined;
      try {
        gw = await start([join(b.dir, 'dist/cli.js'), 'serve', '--config', join(dir, 'c.json'), '--port', '0'], { LOG_LEVEL: 'info', CONFLUX_DATA_DIR: join(dir, 'data') }, 180_000);
        await waitReady(gw.url);
        const s = await Session.open(gw.url);
        for (let i = 0; i < 30; i++) await s.call('tools/list', {});
        // To the last byte, and (decoded) once the client has the answer as a string.
        const times: number[] = [];
        const decoded: number[] = [];
        const cpu0 = gw.cpuMs();
        for (let i = 0; i < 200; i++) {
          const started = performance.now();
          const { receivedAt } = await s.exchange('tools/list', {});
          times.push(receivedAt - started);
          decoded.push(performance.now() - started);
        }
        const cpu = (gw.cpuMs() - cpu0) / 200;
        const p = percentiles(times);
        (results[b.name] ??= []).push(p.p50Ms);
        console.log(`round ${round} ${b.name}: p50 ${p.p50Ms} p99 ${p.p99Ms} (decoded: p50 ${percentiles(decoded).p50Ms}) cpu/list ${cpu.toFixed(2)} ms`);
        await s.close();
      } finally {
        await gw?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
} finally {
  await host.stop();
}
console.log(results);

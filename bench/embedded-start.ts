/**
 * First start with the embedded database (PGlite): time from spawning `conflux serve` on a
 * fresh data folder until `/ready` answers 200, and the process's resident memory then (VmRSS)
 * and at its peak (VmHWM). Each run then restarts the gateway on the folder it created, for the
 * figures of every later start. No upstream servers: only the gateway and its database.
 *
 *   npm run build && npx tsx bench/embedded-start.ts [--runs 3] [--source]
 *
 * `--source` runs src/cli.ts through tsx instead of dist/cli.js (to try a change without building;
 * tsx adds its own start-up time). Prints a Markdown table, then the figures as JSON.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './processes.js';

interface StartFigures {
  /** Spawn to the first 200 from /ready. */
  readyMs: number;
  /** What the gateway itself reports for creating the database (first start only). */
  createdSeconds?: number | undefined;
  rssMib: number;
  peakRssMib: number;
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, source: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const cli = values.source ? ['--import', 'tsx', 'src/cli.ts'] : ['dist/cli.js'];

/** Starts the gateway on `dataDir`, waits for /ready, reads its memory, and stops it. */
async function measureStart(config: string, dataDir: string): Promise<StartFigures> {
  const started = performance.now();
  const child = spawn(process.execPath, [...cli, 'serve', '--config', config, '--port', '0'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', CONFLUX_DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  try {
    let url: string | undefined;
    while (!(url = /"msg":"Conflux listening on (http:[^"]+)"/.exec(stderr)?.[1])) {
      if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const ready = url.replace(/\/mcp$/, '/ready');
    while ((await fetch(ready).then((r) => r.status, () => 0)) !== 200) await new Promise((r) => setTimeout(r, 10));
    const readyMs = performance.now() - started;
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    const created = /embedded database created in ([\d.]+) s/.exec(stderr)?.[1];
    return { readyMs, rssMib: kib('VmRSS') / 1024, peakRssMib: kib('VmHWM') / 1024, createdSeconds: created === undefined ? undefined : Number(created) };
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(forced);
    }
  }
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

const results: { first: StartFigures; again: StartFigures }[] = [];
const load = loadavg()[0]!;
for (let i = 0; i < runs; i++) {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-embedded-start-'));
  try {
    const config = join(dir, 'mcp-servers.yaml');
    await writeFile(config, 'gateway:\n  host: 127.0.0.1\nservers: {}\n');
    const first = await measureStart(config, join(dir, 'data'));
    const again = await measureStart(config, join(dir, 'data'));
    results.push({ first, again });
    process.stderr.write(`run ${i + 1}: first start ${round(first.readyMs / 1000, 2)} s, ${round(first.rssMib)} MiB (peak ${round(first.peakRssMib)}); again ${round(again.readyMs / 1000, 2)} s, ${round(again.rssMib)} MiB\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
console.log(`${cpus().length} cores (${cpu}), Node ${process.version}, ${values.source ? 'src/cli.ts via tsx' : 'dist/cli.js'}; load average ${round(load, 2)} at the start\n`);
console.log('| run | first start: to /ready s | of which creating the database s | RSS MiB | peak RSS MiB | next start: to /ready s | RSS MiB | peak RSS MiB |');
console.log('|---|---|---|---|---|---|---|---|');
results.forEach(({ first, again }, i) =>
  console.log(
    `| ${i + 1} | ${round(first.readyMs / 1000, 2)} | ${first.createdSeconds ?? 'n/a'} | ${round(first.rssMib)} | ${round(first.peakRssMib)} | ${round(again.readyMs / 1000, 2)} | ${round(again.rssMib)} | ${round(again.peakRssMib)} |`,
  ),
);
console.log(`\n${JSON.stringify({ node: process.version, cores: cpus().length, loadAverage: round(load, 2), source: values.source, results }, null, 2)}`);

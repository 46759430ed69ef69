/**
 * What creating the embedded database costs, and what a migrated template would save: PGlite
 * opened on a fresh folder (initdb, then the migrations), against the same folder filled from a
 * tarball of an already migrated database (`loadDataDir`, made once here by `dumpDataDir`).
 * Each start runs in a process of its own, so its resident memory is its own.
 *
 *   npx tsx bench/pglite-template.ts [--runs 3]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { ROOT } from './processes.js';

const MIGRATIONS = join(ROOT, 'drizzle');
/** As src/store/database.ts opens it. */
const SETTINGS = ['shared_buffers=16MB'];

interface Measured {
  openSeconds: number;
  migrateSeconds: number;
  rssMib: number;
  peakRssMib: number;
}

function memory(): { rssMib: number; peakRssMib: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const mib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { rssMib: mib('VmRSS'), peakRssMib: mib('VmHWM') };
}

/** One start on a fresh folder, from nothing or from `template`; prints its figures as JSON. */
async function child(template: string | undefined): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'conflux-pglite-'));
  try {
    const started = performance.now();
    const loadDataDir = template ? new Blob([await readFile(template)]) : undefined;
    const client = new PGlite({ dataDir, loadDataDir, postgresqlconf: SETTINGS });
    await client.waitReady;
    const opened = performance.now();
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
    const migrated = performance.now();
    const measured: Measured = { openSeconds: (opened - started) / 1000, migrateSeconds: (migrated - opened) / 1000, ...memory() };
    await client.close();
    process.stdout.write(JSON.stringify(measured));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** A migrated database in memory, dumped as PGlite's gzipped tarball. */
async function makeTemplate(path: string): Promise<number> {
  const client = new PGlite({ postgresqlconf: SETTINGS });
  await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
  const tarball = await client.dumpDataDir('gzip');
  await client.close();
  await writeFile(path, Buffer.from(await tarball.arrayBuffer()));
  return tarball.size;
}

const run = promisify(execFile);
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

async function main(runs: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-pglite-template-'));
  try {
    const template = join(dir, 'template.tar.gz');
    const bytes = await makeTemplate(template);
    const load = loadavg()[0]!;
    const rows: { mode: string; measured: Measured }[] = [];
    for (let i = 0; i < runs; i++) {
      for (const mode of ['initdb', 'template'] as const) {
        const args = ['--import', 'tsx', join(ROOT, 'bench/pglite-template.ts'), '--child', ...(mode === 'template' ? [template] : [])];
        const { stdout } = await run(process.execPath, args, { cwd: ROOT, maxBuffer: 1 << 20 });
        rows.push({ mode, measured: JSON.parse(stdout) as Measured });
        process.stderr.write(`run ${i + 1} ${mode}: ${stdout}\n`);
      }
    }
    console.log(`${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}; load average ${round(load, 2)} at the start; template ${round(bytes / 1024 / 1024, 2)} MiB gzipped\n`);
    console.log('| run | fresh folder | open s | migrate s | RSS MiB | peak RSS MiB |');
    console.log('|---|---|---|---|---|---|');
    rows.forEach(({ mode, measured: m }, i) =>
      console.log(`| ${Math.floor(i / 2) + 1} | ${mode === 'initdb' ? 'initdb' : 'from the template'} | ${round(m.openSeconds, 2)} | ${round(m.migrateSeconds, 2)} | ${round(m.rssMib)} | ${round(m.peakRssMib)} |`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const childAt = process.argv.indexOf('--child');
if (childAt !== -1) await child(process.argv[childAt + 1]);
else {
  const runsAt = process.argv.indexOf('--runs');
  await main(runsAt === -1 ? 3 : Number(process.argv[runsAt + 1]));
}

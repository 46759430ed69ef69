import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { ROOT, waitFor } from '../helpers/gateway.js';

const run = promisify(execFile);

interface PackResult {
  filename: string;
  files: { path: string }[];
}

const hasPostgres = await postgresAvailable();

/**
 * The package as npm publishes it (`npm pack`, from the dist/ that `npm ci` builds through
 * `prepare`), installed as `npx conflux-gateway` installs it: unpacked into a node_modules of
 * its own, its bins linked and made executable, its dependencies beside it, and run from an
 * unrelated folder holding only a config.
 */
describe('the npm package conflux-gateway', () => {
  let temp: string;
  let files: string[];
  let manifest: { name: string; bin: Record<string, string>; files: string[] };
  /** The folder `npx` would run the bins in: the user's, with a config and nothing else. */
  let work: string;
  let env: NodeJS.ProcessEnv;
  let journal: { entries: { tag: string }[] };

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` (npm ci builds it through prepare)');
    temp = await mkdtemp(join(tmpdir(), 'conflux-package-'));
    // Packed as is: dist/ is built already, and building it again here would race the other tests.
    const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', temp], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as PackResult[];
    files = packed!.files.map((f) => f.path);

    const installed = join(temp, 'npx/node_modules/conflux-gateway');
    await mkdir(installed, { recursive: true });
    await run('tar', ['-xzf', join(temp, packed!.filename), '-C', installed, '--strip-components=1']);
    manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as typeof manifest;
    journal = JSON.parse(await readFile(join(ROOT, 'drizzle/meta/_journal.json'), 'utf8')) as typeof journal;
    // What the registry would install next to it (this checkout's dependencies, hoisted as npm does).
    await symlink(join(ROOT, 'node_modules'), join(installed, 'node_modules'), 'dir');
    const bin = join(temp, 'npx/node_modules/.bin');
    await mkdir(bin);
    for (const [name, target] of Object.entries(manifest.bin)) {
      await chmod(join(installed, target), 0o755);
      await symlink(join('../conflux-gateway', target), join(bin, name));
    }
    work = join(temp, 'work');
    await mkdir(work);
    await writeFile(join(work, 'mcp-servers.yaml'), 'gateway:\n  host: 127.0.0.1\nservers: {}\n');
    env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, LOG_LEVEL: 'info', CONFLUX_CONFIG: '', DATABASE_URL: '' };
  });
  afterAll(async () => {
    if (temp) await rm(temp, { recursive: true, force: true });
  });

  it('is named conflux-gateway (npm\'s "conflux" is another project) and ships what the CLI reads at run time', async () => {
    expect(manifest.name).toBe('conflux-gateway');
    expect(manifest.bin).toEqual({ 'conflux-gateway': 'dist/cli.js', conflux: 'dist/cli.js' });
    expect(files).toContain('dist/cli.js');
    // database.ts reads the migrations at ../../drizzle from dist/store.
    expect(files).toContain('dist/store/database.js');
    expect(files).toContain('drizzle/meta/_journal.json');
    for (const { tag } of journal.entries) expect(files).toContain(`drizzle/${tag}.sql`);
    // The sample config, and the folder its files server serves.
    expect(files).toContain('mcp-servers.yaml');
    expect(files).toEqual(expect.arrayContaining(['demo/README.md', 'demo/notes.txt']));
    expect(files.filter((f) => /^(src|tests|bench|scripts)\//.test(f) || f.startsWith('.'))).toEqual([]);
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { name: string; packages: Record<string, { name?: string; bin?: unknown }> };
    expect(lock.name).toBe('conflux-gateway');
    expect(lock.packages['']).toMatchObject({ name: 'conflux-gateway', bin: manifest.bin });
  });

  it('runs as either bin from a folder that holds only a config', async () => {
    for (const bin of ['conflux-gateway', 'conflux']) {
      const { stdout } = await run(bin, ['--version'], { cwd: work, env });
      expect(stdout.trim()).toMatch(/^conflux \d+\.\d+\.\d+/);
    }
    const { stdout } = await run('conflux-gateway', ['validate'], { cwd: work, env });
    expect(stdout.trim()).toBe('mcp-servers.yaml: valid (0 servers)');
  });

  describe.skipIf(!hasPostgres)('with a database', () => {
    let database: TestDatabase;
    let server: ChildProcess | undefined;

    beforeAll(async () => {
      database = await freshPostgres();
    });
    afterAll(async () => {
      if (server && server.exitCode === null) {
        server.kill('SIGTERM');
        await once(server, 'exit');
      }
      await database?.dispose();
    });

    it('applies the migrations it ships, and serves', async () => {
      const withDatabase = { ...env, DATABASE_URL: database.url! };
      await run('conflux-gateway', ['migrate'], { cwd: work, env: withDatabase });
      const sql = postgres(database.url!, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
        expect(row!.n).toBe(journal.entries.length);
      } finally {
        await sql.end({ timeout: 1 });
      }

      server = spawn('conflux-gateway', ['serve', '--port', '0'], { cwd: work, env: withDatabase, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      server.stdout!.on('data', (chunk) => (output += chunk));
      server.stderr!.on('data', (chunk) => (output += chunk));
      const listening = () => /http:\/\/127\.0\.0\.1:\d+\/mcp/.exec(output)?.[0];
      await waitFor(() => listening() !== undefined || server!.exitCode !== null, 60_000, 'the listening URL');
      const url = listening();
      expect(url, output).toBeDefined();
      const index = await fetch(new URL('/', url!), { headers: { accept: 'application/json' } });
      expect(((await index.json()) as { links: Record<string, string> }).links.mcp).toBe('/mcp');
      expect((await fetch(new URL('/health', url!))).status).toBe(200);
      server.kill('SIGTERM');
      const [code] = await once(server, 'exit');
      expect(code).toBe(0);
    });
  });
});

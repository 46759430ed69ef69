import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { builtName, PROCESS_ENTRIES } from './process-entries.js';

/**
 * Builds go straight into node_modules, `<root>/node_modules/<PREFIX><digest>/cli.js`: two folders
 * below the root, as src/ and dist/ files are, because the gateway finds drizzle/, dist/console and
 * mcp-servers.yaml by `new URL('../../…', import.meta.url)`. Node finds the packages by walking up
 * from there, and git, eslint and tsc leave node_modules alone.
 */
const PREFIX = '.conflux-test-build-';
const BUILDING_PREFIX = '.conflux-test-building-';
const RECORD = 'inputs.json';

/**
 * Read for every build besides the sources the bundle took in: the libraries' versions (the
 * lockfile, and the record npm rewrites on every install, which also changes when packages are
 * installed without the lockfile changing), the compiler settings and how it is built.
 */
const ALWAYS_READ = ['package-lock.json', 'node_modules/.package-lock.json', 'tsconfig.json', 'tests/helpers/entry-build.ts', 'tests/helpers/process-entries.ts'];

/**
 * A build not used for this long is removed when another is made: each edit of the sources
 * leaves one behind (about 1 MB), and a run, which marks its build when it starts (and a watch
 * mode's at each rerun), takes minutes.
 */
const STALE_MS = 2 * 60 * 60 * 1000;

/**
 * The process entries (`PROCESS_ENTRIES`) built from `root`'s current sources: reused when an
 * earlier or concurrent run built the same sources, else built in a folder of its own and renamed
 * into place whole, so that no run ever starts a half-written one. Builds long unused go.
 */
export async function cachedEntryBuild(root: string): Promise<string> {
  const parent = join(root, 'node_modules');
  const cached = await currentBuild(root, parent);
  if (cached) {
    // Marks it as in use, so that a run on other sources does not remove it as stale.
    const now = new Date();
    await utimes(cached, now, now);
    return cached;
  }
  const building = join(parent, `${BUILDING_PREFIX}${process.pid}-${Date.now()}`);
  try {
    const inputs = await buildEntries(root, building);
    await writeFile(join(building, RECORD), JSON.stringify(inputs));
    const dir = join(parent, `${PREFIX}${digestOf(root, inputs)}`);
    await rename(building, dir).catch((error: NodeJS.ErrnoException) => {
      // Another run built the same sources first: its build is as good as this one.
      if (!['ENOTEMPTY', 'EEXIST'].includes(error.code ?? '') || !existsSync(join(dir, RECORD))) throw error;
    });
    await removeStale(parent, dir);
    return dir;
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/**
 * Packages left as imports, found in node_modules: those that find files of their own beside
 * their code (PGlite its WebAssembly and data, pino its worker's script), which a bundle would
 * look for beside itself.
 */
const EXTERNAL = ['@electric-sql/pglite', 'pino', 'thread-stream'];

/**
 * Bundled CommonJS code calls `require` for Node's modules and may read `__dirname`, neither of
 * which an ES module has: both are given, as each chunk's own.
 */
const COMMONJS_GLOBALS = [
  "import { createRequire as __conflux_createRequire } from 'node:module';",
  "import { fileURLToPath as __conflux_fileURLToPath } from 'node:url';",
  'const require = __conflux_createRequire(import.meta.url);',
  'const __filename = __conflux_fileURLToPath(import.meta.url);',
  "const __dirname = __conflux_fileURLToPath(new URL('.', import.meta.url));",
].join(' ');

/**
 * Bundles each entry with the modules it imports, packages included (but `EXTERNAL`), into
 * `outDir`, and returns the repository files it read, relative to `root`. A process then loads a
 * few files instead of hundreds: a stdio fixture starts on 0.26 s of CPU instead of 0.43 s, the
 * CLI's `--version` on 0.5 s instead of 0.75 s, and tests start hundreds of such processes.
 * Code shared by entries goes into chunks beside them, flat, so that every module's
 * `import.meta.url` is two folders below the root; what the CLI loads for one command only is one.
 */
export async function buildEntries(root: string, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: PROCESS_ENTRIES.map((entry) => ({ in: entry, out: builtName(entry).slice(0, -'.js'.length) })),
    outdir: outDir,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    banner: { js: COMMONJS_GLOBALS },
    // As tsc leaves them: class and function names show in errors and logs.
    keepNames: true,
    metafile: true,
    logLevel: 'silent',
  });
  // The packages' files are covered by the install's records (ALWAYS_READ).
  return Object.keys(result.metafile.inputs)
    .filter((file) => !file.startsWith('node_modules/'))
    .sort();
}

/** A build under `parent` whose recorded inputs are as they are now, if there is one. */
async function currentBuild(root: string, parent: string): Promise<string | undefined> {
  const builds = (await readdir(parent)).filter((entry) => entry.startsWith(PREFIX));
  const used = new Map(await Promise.all(builds.map(async (entry) => [entry, (await stat(join(parent, entry)).catch(() => undefined))?.mtimeMs ?? 0] as const)));
  // The latest used first: while sources are being edited, each edit leaves a build behind.
  for (const entry of builds.sort((a, b) => used.get(b)! - used.get(a)!)) {
    const dir = join(parent, entry);
    const inputs = await readFile(join(dir, RECORD), 'utf8').then((text) => JSON.parse(text) as string[], () => undefined);
    if (inputs && digestOf(root, inputs) === entry.slice(PREFIX.length)) return dir;
  }
  return undefined;
}

/** A digest of the files a build reads (`ALWAYS_READ` and `inputs`), names and contents: equal digests, equal builds. */
function digestOf(root: string, inputs: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of [...ALWAYS_READ, ...inputs]) {
    hash.update(`${file}\0`);
    // A recorded input since removed changes the digest as an edit does.
    hash.update(existsSync(join(root, file)) ? readFileSync(join(root, file)) : '\0missing');
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** Removes builds, and folders of builds cut short, not used for `STALE_MS`. */
async function removeStale(parent: string, keep: string): Promise<void> {
  const now = Date.now();
  for (const entry of await readdir(parent)) {
    const path = join(parent, entry);
    if (path === keep || !(entry.startsWith(PREFIX) || entry.startsWith(BUILDING_PREFIX))) continue;
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_MS) await rm(path, { recursive: true, force: true });
  }
}

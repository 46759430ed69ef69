import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { promisify } from 'node:util';

/**
 * Read whole for every build: the console's own sources and config, and the versions of the
 * bundler and libraries. The gateway sources a build read (the server schema and what it
 * imports) are recorded with it instead: edits elsewhere in `src/` keep the build.
 */
const ALWAYS_READ = ['console', 'package-lock.json', 'tsconfig.json'];

/** A cached build not used for this long is removed when another is made. */
const STALE_MS = 24 * 60 * 60 * 1000;

/** The console built from the current sources into `dir` (emptied first), as `npm run build:console` builds it into dist/console. */
export async function buildConsole(root: string, dir: string): Promise<void> {
  await buildRecordingInputs(root, dir);
}

/**
 * The console built from `root`'s current sources, kept in `cacheDir` under the digest of the
 * files it was built from: built only when no earlier (or concurrent) run built these sources.
 * A build is made in a folder of its own and renamed into place whole, so that a run never
 * reads a half-written one; builds unused for a day are removed.
 */
export async function cachedConsoleBuild(root: string, cacheDir: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const cached = await currentBuild(root, cacheDir);
  if (cached) {
    // Marks it as in use, so that a run on other sources does not remove it as stale.
    const now = new Date();
    await utimes(`${cached}.json`, now, now);
    return cached;
  }
  const building = join(cacheDir, `building-${process.pid}-${Date.now()}`);
  try {
    const read = await buildRecordingInputs(root, building);
    const gatewaySources = read.filter((file) => file.startsWith('src/')).sort();
    const dir = join(cacheDir, digestOf(root, gatewaySources));
    await writeFile(`${dir}.json`, JSON.stringify(gatewaySources));
    await rename(building, dir).catch((error: NodeJS.ErrnoException) => {
      // Another run built the same sources first: its build is as good as this one.
      if (!['ENOTEMPTY', 'EEXIST'].includes(error.code ?? '') || !existsSync(join(dir, 'index.html'))) throw error;
    });
    await removeStale(cacheDir, dir);
    return dir;
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/** A build in `cacheDir` whose recorded inputs are as they are now, if there is one. */
async function currentBuild(root: string, cacheDir: string): Promise<string | undefined> {
  for (const entry of await readdir(cacheDir)) {
    if (!entry.endsWith('.json')) continue;
    const dir = join(cacheDir, entry.slice(0, -'.json'.length));
    // Unreadable while another run writes it: that run's build is not in place yet either.
    const gatewaySources = await readFile(`${dir}.json`, 'utf8').then((text) => JSON.parse(text) as string[], () => undefined);
    if (gatewaySources && existsSync(join(dir, 'index.html')) && digestOf(root, gatewaySources) === entry.slice(0, -'.json'.length)) return dir;
  }
  return undefined;
}

const RECORDING_BUILD = 'tests/helpers/build-console-recording-inputs.ts';

/**
 * Builds the console into `outDir` as `npm run build:console` does (a production bundle, whatever
 * the NODE_ENV of the test run), and returns every file of the repository the build read
 * (relative to `root`), node_modules aside.
 */
async function buildRecordingInputs(root: string, outDir: string): Promise<string[]> {
  const inputsFile = `${outDir}.inputs`;
  const { NODE_ENV: _testMode, ...env } = process.env;
  try {
    await promisify(execFile)(process.execPath, ['--import', 'tsx', join(root, RECORDING_BUILD), outDir, inputsFile], { cwd: root, env });
    return JSON.parse(await readFile(inputsFile, 'utf8')) as string[];
  } finally {
    await rm(inputsFile, { force: true });
  }
}

/** A digest of the files a build reads (`ALWAYS_READ` and `gatewaySources`), names and contents: equal digests, equal bundles. */
function digestOf(root: string, gatewaySources: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of [...filesUnder(root, ALWAYS_READ), ...gatewaySources]) {
    hash.update(`${file}\0`);
    // A recorded source since removed changes the digest as an edit does.
    hash.update(existsSync(join(root, file)) ? readFileSync(join(root, file)) : '\0missing');
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function filesUnder(root: string, inputs: readonly string[]): string[] {
  const files: string[] = [];
  for (const input of inputs) {
    const path = join(root, input);
    if (!existsSync(path)) continue;
    if (!statSync(path).isDirectory()) files.push(input);
    else for (const entry of readdirSync(path, { recursive: true, encoding: 'utf8' })) if (statSync(join(path, entry)).isFile()) files.push(join(input, entry).split(sep).join('/'));
  }
  return files.sort();
}

/** Removes the builds (each judged by its `.json`, touched when used) and leftovers unused for a day. */
async function removeStale(cacheDir: string, keep: string): Promise<void> {
  const now = Date.now();
  const entries = await readdir(cacheDir);
  for (const entry of entries) {
    const path = join(cacheDir, entry);
    if (path === keep || path === `${keep}.json` || entries.includes(`${entry}.json`)) continue;
    const info = await stat(path).catch(() => undefined);
    if (!info || now - info.mtimeMs <= STALE_MS) continue;
    // The build first: a record without its build is never taken for one.
    if (entry.endsWith('.json')) await rm(path.slice(0, -'.json'.length), { recursive: true, force: true });
    await rm(path, { recursive: true, force: true });
  }
}

/** Where the test runs keep their console builds: in `node_modules/.cache`, as tools keep theirs. */
export function consoleCacheDir(root: string): string {
  return join(root, 'node_modules/.cache/conflux-test-console');
}

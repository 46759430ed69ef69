import { createRequire } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inject } from 'vitest';
import { builtName, PROCESS_ENTRIES, TEST_PROCESS_FLAGS } from './process-entries.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** tsx by its file URL: a process started in another folder could not find it by name. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/**
 * The arguments of `node` that run the TypeScript file `file` (absolute, or relative to the
 * repository root): its build of this run, which starts on less than half the CPU of compiling
 * it through tsx in every process (`conflux --version` 0.8 s against 2 s, the stdio fixture
 * 0.45 s against 1 s), or, where the run built nothing (outside vitest, or a config without the
 * set-up), through tsx.
 */
export function nodeArgs(file: string): string[] {
  const path = resolve(ROOT, file);
  const build = runBuild();
  if (!build) return ['--import', TSX, path];
  if ('error' in build) throw new Error(`the process entries failed to build: ${build.error}`);
  const entry = relative(ROOT, path).split(sep).join('/');
  if (!PROCESS_ENTRIES.includes(entry)) throw new Error(`${entry} is not built for test processes: add it to PROCESS_ENTRIES in tests/helpers/process-entries.ts`);
  return [...TEST_PROCESS_FLAGS, join(build.dir, builtName(entry))];
}

/** The script `node` runs for `file`, as it appears on the process's command line. */
export function nodeScript(file: string): string {
  return nodeArgs(file).at(-1)!;
}

function runBuild(): { dir: string } | { error: string } | undefined {
  try {
    return inject('entryBuild');
  } catch {
    // Not in a vitest test process (a conformance report run by tsx): nothing was built.
    return undefined;
  }
}

import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { cachedEntryBuild } from './entry-build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The process entries built for this run (tests/helpers/built-entries.ts `nodeArgs`), or why they could not be built. */
    entryBuild: { dir: string } | { error: string };
  }
}

/**
 * Builds the CLI and the fixtures tests start as processes once for the whole run (see
 * tests/helpers/built-entries.ts), and not at all when an earlier run built the same sources;
 * in watch mode again before each rerun, so that the processes run the sources as edited.
 * A failed build fails only the tests that start those processes, with the bundler's words.
 */
export default async function setup(project: TestProject): Promise<void> {
  const root = resolve(import.meta.dirname, '../..');
  const provideBuild = async () => {
    try {
      project.provide('entryBuild', { dir: await cachedEntryBuild(root) });
    } catch (error) {
      project.provide('entryBuild', { error: (error as Error).message });
    }
  };
  await provideBuild();
  project.onTestsRerun(provideBuild);
}

import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { cachedConsoleBuild, consoleCacheDir } from './console-build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The console built from this run's sources (tests/e2e/browser.ts `builtConsole`), or why it could not be built. */
    consoleBuild: { dir: string } | { error: string };
  }
}

/**
 * Builds the console once for the whole run (three test files serve it, each had built its own),
 * and not at all when an earlier run built the same sources. A failed build fails only the tests
 * that serve the console, with the bundler's words, rather than the whole run.
 */
export default async function setup(project: TestProject): Promise<void> {
  const root = resolve(import.meta.dirname, '../..');
  try {
    project.provide('consoleBuild', { dir: await cachedConsoleBuild(root, consoleCacheDir(root)) });
  } catch (error) {
    // The bundler's error output is part of the message (`Command failed: …` and its stderr).
    project.provide('consoleBuild', { error: (error as Error).message });
  }
}

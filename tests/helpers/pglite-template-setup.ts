import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** This run's own folder, where the first test process that needs one leaves the migrated PGlite template. */
    pgliteTemplateDir: string;
  }
}

/**
 * Gives the run a folder for the PGlite template its test processes share, removed when the run
 * ends. The template itself is made on first use (tests/helpers/databases.ts), so a run without
 * embedded databases pays nothing for it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-test-pglite-'));
  project.provide('pgliteTemplateDir', dir);
  return () => rm(dir, { recursive: true, force: true });
}

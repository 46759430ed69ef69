import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { readTemplate } from './pglite-template.js';

/** How a new embedded database was made: loaded from the migrated template, or created by initdb. */
export type CreatedFrom = 'template' | 'initdb';

export interface CreateEmbeddedOptions {
  /** The folder of the template to try first (see pglite-template.ts). */
  templateDir: string;
  migrationsFolder: string;
  /** Starts PGlite on the folder, filled from `tarball` when one is given, and waits until it is ready. */
  start(tarball: Blob | undefined): Promise<PGlite>;
  /** Told which way the database is made and, once made, how long it took. */
  progress?: ((line: string) => void) | undefined;
}

/**
 * The mark of a creation under way: `<data folder>.creating`, beside the folder like its lock.
 * Neither the template's unpacking nor initdb writes the folder in an order that tells a finished
 * database from one cut short (PG_VERSION comes before the configuration files), so a folder
 * whose mark is still there when it is next opened holds only an interrupted creation's remains.
 */
export function creationMarker(dataDir: string): string {
  return `${resolve(dataDir)}.creating`;
}

/** Whether `dataDir` has no database yet, or only what an interrupted creation left. */
export function needsCreation(dataDir: string): boolean {
  return !existsSync(join(dataDir, 'PG_VERSION')) || existsSync(creationMarker(dataDir));
}

/**
 * Creates the embedded database in `dataDir`, a folder without one (the caller holds its lock):
 * from the template where it fits and the folder is empty, by initdb otherwise. A template that
 * fails to load is not fatal: what it wrote is removed and the database is created by initdb.
 * The creation is marked until the database is ready, so a creation cut short (a kill, a full
 * disk) is started again from an empty folder rather than opened half made.
 */
export async function createEmbeddedDatabase(dataDir: string, options: CreateEmbeddedOptions): Promise<{ client: PGlite; createdFrom: CreatedFrom }> {
  const where = resolve(dataDir);
  const { progress } = options;
  const marker = creationMarker(dataDir);
  if (existsSync(marker)) {
    progress?.(`an earlier creation of the embedded database in ${where} did not finish; starting it again`);
    await emptyFolder(dataDir);
  } else {
    await writeFile(marker, `${process.pid}\n`);
  }
  const created = await createIn(dataDir, where, options);
  await rm(marker, { force: true });
  return created;
}

async function createIn(dataDir: string, where: string, options: CreateEmbeddedOptions): Promise<{ client: PGlite; createdFrom: CreatedFrom }> {
  const { progress } = options;
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  // Only an empty folder takes a template: whatever else is there (a crashed initdb's remains,
  // someone's files) is left for initdb to handle as it always has.
  const template =
    (await readdir(dataDir)).length > 0
      ? { unusable: `${where} is not empty` }
      : await readTemplate(options.templateDir, options.migrationsFolder).catch((error: unknown) => ({ unusable: `the template could not be read: ${(error as Error).message}` }));
  if ('tarball' in template) {
    progress?.(`creating the embedded database in ${where} from the migrated template (first start only)…`);
    try {
      const client = await options.start(template.tarball);
      progress?.(`embedded database created in ${seconds()} s from the template`);
      return { client, createdFrom: 'template' };
    } catch (error) {
      // The folder was empty before: everything in it now is the failed load's.
      await emptyFolder(dataDir);
      progress?.(`the template did not load (${(error as Error).message}); creating the embedded database in ${where} instead…`);
    }
  } else {
    progress?.(`creating the embedded database in ${where} (first start only; not from a template: ${template.unusable})…`);
  }
  const client = await options.start(undefined);
  progress?.(`embedded database created in ${seconds()} s`);
  return { client, createdFrom: 'initdb' };
}

async function emptyFolder(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

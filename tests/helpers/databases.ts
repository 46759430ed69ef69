import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { inject } from 'vitest';
import { openDatabase, type OpenedDatabase } from '../../src/store/database.js';
import { TarballBlob } from '../../src/store/tarball-blob.js';
import { scaled } from './load-scale.js';

/** The PostgreSQL server tests may create databases on (CI sets it; the default is this machine's). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<boolean> | undefined;

/** Whether PostgreSQL answers. Under CI it must: a missing server fails instead of skipping. */
export function postgresAvailable(): Promise<boolean> {
  reachable ??= (async () => {
    const sql = postgres(TEST_DATABASE_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
    try {
      await sql`select 1`;
      return true;
    } catch (error) {
      if (process.env.CI) throw new Error(`PostgreSQL at ${TEST_DATABASE_URL} is required under CI: ${(error as Error).message}`, { cause: error });
      return false;
    } finally {
      await sql.end({ timeout: 1 });
    }
  })();
  return reachable;
}

export interface TestDatabase {
  kind: 'pglite' | 'postgres';
  url: string | undefined;
  open(): Promise<OpenedDatabase>;
  /** Drops what the test created. */
  dispose(): Promise<void>;
}

/** A fresh, empty PostgreSQL database of its own, dropped by `dispose()`. */
export async function freshPostgres(): Promise<TestDatabase> {
  const name = `conflux_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    url: url.toString(),
    open: () => openDatabase({ url: url.toString() }),
    dispose: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 1 });
    },
  };
}

/**
 * A fresh in-memory PGlite database, already migrated (its own `migrate()` finds nothing to do):
 * a copy of the run's template rather than a database created from nothing, which takes seconds.
 */
export function freshPglite(): TestDatabase {
  return { kind: 'pglite', url: undefined, open: async () => openDatabase({ loadDataDir: await migratedTemplate() }), dispose: async () => {} };
}

let template: Promise<Blob> | undefined;

/**
 * A migrated PGlite, as the tarball `dumpDataDir()` makes: one per run, made by the first test
 * process that asks and left in the run's folder for the others (see pglite-template-setup.ts);
 * one per test file where there is no such folder.
 */
function migratedTemplate(): Promise<Blob> {
  template ??= (async () => {
    const dir = inject('pgliteTemplateDir') as string | undefined;
    return dir ? sharedTemplate(dir) : new TarballBlob(await dumpMigratedPglite());
  })();
  return template;
}

/** The template in `dir`, made here if no other process is making it. */
async function sharedTemplate(dir: string): Promise<Blob> {
  const file = join(dir, 'migrated.tar');
  const claim = join(dir, 'making');
  // A process that claimed it and died leaves its claim: past this, make one of our own.
  const deadline = Date.now() + scaled(60_000);
  for (;;) {
    const made = await readFile(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (made) return new TarballBlob(made);
    if (await claimed(claim)) {
      try {
        const tarball = await dumpMigratedPglite();
        // Whole or not at all: the others read it as soon as the name exists.
        await writeFile(`${file}.${process.pid}`, tarball);
        await rename(`${file}.${process.pid}`, file);
        return new TarballBlob(tarball);
      } catch (error) {
        await rm(claim, { force: true }); // let another process try
        throw error;
      }
    }
    if (Date.now() > deadline) return new TarballBlob(await dumpMigratedPglite());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function claimed(path: string): Promise<boolean> {
  try {
    await writeFile(path, String(process.pid), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Creates an in-memory PGlite as the gateway opens it, migrates it, and dumps it. */
async function dumpMigratedPglite(): Promise<Uint8Array> {
  const database = await openDatabase({});
  try {
    await database.migrate();
    // Drizzle keeps the client it was given; the store's interface has no use for a dump.
    const client = (database.db as unknown as { $client: PGlite }).$client;
    return new Uint8Array(await (await client.dumpDataDir('none')).arrayBuffer());
  } finally {
    await database.close();
  }
}

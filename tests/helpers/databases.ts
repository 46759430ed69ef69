import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type OpenedDatabase } from '../../src/store/database.js';

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
      if (process.env.CI) throw new Error(`PostgreSQL at ${TEST_DATABASE_URL} is required under CI: ${(error as Error).message}`);
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

/** A fresh in-memory PGlite database. */
export function freshPglite(): TestDatabase {
  return { kind: 'pglite', url: undefined, open: () => openDatabase({}), dispose: async () => {} };
}

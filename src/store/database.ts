import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { Logger } from 'pino';
import postgres from 'postgres';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import * as schema from './schema.js';

/** Either driver: the repositories use only what PostgreSQL and PGlite share. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface OpenedDatabase {
  db: Database;
  /** `postgres` or `pglite`, for logs and readiness. */
  kind: 'postgres' | 'pglite';
  /** Applies pending migrations from `drizzle/`. */
  migrate(): Promise<void>;
  /** A cheap round trip, for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** The embedded folder's lock, held until `close()` (PGlite on a folder only). */
  readonly dataDirLock?: DataDirLock | undefined;
}

export interface DatabaseOptions {
  /** `postgres://...`; without it, embedded PGlite is used. */
  url?: string | undefined;
  /** PGlite's data directory; `memory://` (or undefined) keeps it in memory. */
  dataDir?: string | undefined;
  /**
   * PostgreSQL connections this process may open, default `DEFAULT_POOL_SIZE`; at least 2,
   * since a migration holds its lock on one connection while migrating on another.
   */
  poolSize?: number | undefined;
  /** Told when a migration waits for another process's. */
  logger?: Pick<Logger, 'info'> | undefined;
}

/** PostgreSQL connections of one gateway process, unless `poolSize` says otherwise. */
export const DEFAULT_POOL_SIZE = 10;

/** How long a migration waits for the lock before saying so. */
const LOCK_WAIT_REPORT_MS = 1000;

const MIGRATIONS = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** The advisory lock key migrations hold (any fixed number; this one spells "cflx"). */
export const MIGRATION_LOCK = 0x63666c78;

/**
 * Opens PostgreSQL (with a URL) or embedded PGlite (without). Nothing is migrated until
 * `migrate()`. A PGlite folder is locked first: another process holding it raises
 * `DataDirLockedError`.
 */
export async function openDatabase(options: DatabaseOptions): Promise<OpenedDatabase> {
  if (options.url) {
    const sql = postgres(options.url, { max: Math.max(2, options.poolSize ?? DEFAULT_POOL_SIZE), onnotice: () => {}, connect_timeout: 10 });
    const db = drizzlePostgres(sql, { schema });
    return {
      db: db as unknown as Database,
      kind: 'postgres',
      // Replicas starting together would each create the same tables: one migrates at a time,
      // the others then find nothing left to do. The lock belongs to a transaction on a
      // connection of its own (the migrator runs its transaction on another), so it ends with
      // that transaction, or with the connection: never left on a pooled connection by a failed unlock.
      migrate: async () => {
        await sql.begin(async (lock) => {
          const waiting = setTimeout(() => options.logger?.info('another replica is migrating the database; waiting for it to finish'), LOCK_WAIT_REPORT_MS);
          try {
            await lock`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
          } finally {
            clearTimeout(waiting);
          }
          await migratePostgres(db, { migrationsFolder: MIGRATIONS });
        });
      },
      ping: async () => void (await sql`select 1`),
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const dataDir = options.dataDir && options.dataDir !== 'memory://' ? options.dataDir : undefined;
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const lock = dataDir ? await acquireDataDirLock(dataDir) : undefined;
  let client: PGlite;
  try {
    // The embedded database holds the registry and the audit trail, small and mostly written:
    // PostgreSQL's default 128 MB buffer cache would be most of the gateway's resident memory.
    client = new PGlite(dataDir, { postgresqlconf: ['shared_buffers=16MB'] });
    await client.waitReady; // a folder PGlite cannot open must not keep the lock
  } catch (error) {
    await lock?.release();
    throw error;
  }
  const db = drizzlePglite(client, { schema });
  return {
    db: db as unknown as Database,
    kind: 'pglite',
    migrate: () => migratePglite(db, { migrationsFolder: MIGRATIONS }),
    ping: async () => void (await client.query('select 1')),
    close: async () => {
      try {
        await client.close();
      } finally {
        await lock?.release();
      }
    },
    dataDirLock: lock,
  };
}

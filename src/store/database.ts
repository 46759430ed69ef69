import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { Logger } from 'pino';
import postgres from 'postgres';
import { acquireDataDirLock, readDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { databaseFailure, postgresTarget } from './database-errors.js';
import { createEmbeddedDatabase, openPastStaleMark, planEmbeddedFolder, type CreatedFrom } from './embedded-creation.js';
import { DEFAULT_TEMPLATE_DIR } from './pglite-template.js';
import * as schema from './schema.js';

/** Either driver: the repositories use only what PostgreSQL and PGlite share. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface OpenedDatabase {
  db: Database;
  /** `postgres` or `pglite`, for logs and readiness. */
  kind: 'postgres' | 'pglite';
  /**
   * Applies pending migrations from `drizzle/`; resolves to the names of those applied now
   * (none: it was up to date). A database that cannot be reached fails with a
   * `DatabaseUnavailableError` naming the root cause.
   */
  migrate(): Promise<string[]>;
  /** A cheap round trip, for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** The embedded folder's lock, held until `close()` (PGlite on a folder only). */
  readonly dataDirLock?: DataDirLock | undefined;
  /** How this open made the embedded database, where its folder had none yet. */
  readonly createdFrom?: CreatedFrom | undefined;
}

export interface DatabaseOptions {
  /** `postgres://...`; without it, embedded PGlite is used. */
  url?: string | undefined;
  /** PGlite's data directory; `memory://` (or undefined) keeps it in memory. */
  dataDir?: string | undefined;
  /**
   * An in-memory PGlite's starting contents, a tarball from its `dumpDataDir()`: a copy of a
   * database made once (tests copy one migrated template rather than create one each, seconds apiece).
   */
  loadDataDir?: Blob | undefined;
  /**
   * The migrated template a new data folder is filled from (see pglite-template.ts), default the
   * one `npm run build:template` leaves in dist/; a new folder it does not fit is created by initdb.
   */
  templateDir?: string | undefined;
  /**
   * PostgreSQL connections this process may open, default `DEFAULT_POOL_SIZE`; at least 2,
   * since a migration holds its lock on one connection while migrating on another.
   */
  poolSize?: number | undefined;
  /** Told when a migration waits for another process's. */
  logger?: Pick<Logger, 'info'> | undefined;
  /** Told when the embedded database is created (its first start, which takes seconds) and when that is done. */
  progress?: ((line: string) => void) | undefined;
}

/** PostgreSQL connections of one gateway process, unless `poolSize` says otherwise. */
export const DEFAULT_POOL_SIZE = 10;

/** How long a migration waits for the lock before saying so. */
const LOCK_WAIT_REPORT_MS = 1000;

export const MIGRATIONS = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** The advisory lock key migrations hold (any fixed number; this one spells "cflx"). */
export const MIGRATION_LOCK = 0x63666c78;

/**
 * Opens PostgreSQL (with a URL) or embedded PGlite (without). Nothing is migrated until
 * `migrate()`. A PGlite folder is locked first: another process holding it raises
 * `DataDirLockedError`.
 */
export async function openDatabase(options: DatabaseOptions): Promise<OpenedDatabase> {
  if (options.url) {
    const target = postgresTarget(options.url); // an unusable URL fails here, said plainly
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
        try {
          return await sql.begin(async (lock) => {
            const waiting = setTimeout(() => options.logger?.info('another replica is migrating the database; waiting for it to finish'), LOCK_WAIT_REPORT_MS);
            try {
              await lock`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
            } finally {
              clearTimeout(waiting);
            }
            // Read while the lock is held, so what changed between the two reads is this process's
            // doing; on the pool, not in the lock's transaction, whose cached catalog would miss
            // the table the migrator just created.
            return appliedBy(async (text) => sql.unsafe(text), () => migratePostgres(db, { migrationsFolder: MIGRATIONS }));
          });
        } catch (error) {
          throw databaseFailure(error, target) ?? error;
        }
      },
      ping: async () => void (await sql`select 1`),
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const dataDir = options.dataDir && options.dataDir !== 'memory://' ? options.dataDir : undefined;
  if (dataDir) await mkdir(dataDir, { recursive: true });
  // Read before it is taken over: the lock a process left tells whose creation, if any, the folder holds.
  const leftLock = dataDir ? await readDataDirLock(dataDir) : undefined;
  const lock = dataDir ? await acquireDataDirLock(dataDir) : undefined;
  // The embedded database holds the registry and the audit trail, small and mostly written:
  // PostgreSQL's default 128 MB buffer cache would be most of the gateway's resident memory.
  // One options object: PGlite drops its second argument when the first (dataDir) is undefined.
  const start = async (loadDataDir: Blob | undefined) => {
    const client = new PGlite({ dataDir, loadDataDir, postgresqlconf: ['shared_buffers=16MB'] });
    await client.waitReady;
    return client;
  };
  let client: PGlite;
  let createdFrom: CreatedFrom | undefined;
  try {
    // Creating a database takes seconds (up to half a minute on a busy machine), less from the
    // template: said either way, so a first start does not look hung. A folder with a finished
    // database is never filled from a template (embedded-creation.ts tells them apart).
    const plan = dataDir !== undefined && !options.loadDataDir ? await planEmbeddedFolder(dataDir, leftLock) : undefined;
    if (dataDir !== undefined && plan?.create) {
      const own = await readDataDirLock(dataDir);
      if (!own) throw new Error(`the lock ${lock?.path ?? dataDir} taken by this process is gone`);
      ({ client, createdFrom } = await createEmbeddedDatabase(dataDir, {
        templateDir: options.templateDir ?? DEFAULT_TEMPLATE_DIR,
        migrationsFolder: MIGRATIONS,
        lockToken: own.token,
        afresh: plan.afresh,
        start,
        progress: options.progress,
      }));
    } else if (dataDir !== undefined && plan?.staleMark) {
      client = await openPastStaleMark(dataDir, () => start(undefined), options.progress);
    } else {
      client = await start(options.loadDataDir);
    }
  } catch (error) {
    await lock?.release(); // a folder PGlite cannot open must not keep the lock
    throw error;
  }
  const db = drizzlePglite(client, { schema });
  return {
    db: db as unknown as Database,
    kind: 'pglite',
    migrate: () => appliedBy(async (text) => (await client.query<AppliedRow>(text)).rows, () => migratePglite(db, { migrationsFolder: MIGRATIONS })),
    ping: async () => void (await client.query('select 1')),
    close: async () => {
      try {
        await client.close();
      } finally {
        await lock?.release();
      }
    },
    dataDirLock: lock,
    createdFrom,
  };
}

interface AppliedRow {
  at: string;
}

/**
 * The names of the migrations `migrate` applies. Drizzle's migrator does not say: its table,
 * read before and after, does (a row per migration, stamped with the journal's `when`).
 */
async function appliedBy(query: (text: string) => Promise<readonly AppliedRow[]>, migrate: () => Promise<void>): Promise<string[]> {
  const stamps = async () => {
    const [table] = await query(`select coalesce(to_regclass('drizzle.__drizzle_migrations')::text, '') as at`);
    if (!table?.at) return new Set<string>();
    return new Set((await query('select created_at::text as at from drizzle.__drizzle_migrations')).map((row) => row.at));
  };
  const before = await stamps();
  await migrate();
  const added = [...(await stamps())].filter((at) => !before.has(at));
  if (added.length === 0) return [];
  const journal = JSON.parse(await readFile(join(MIGRATIONS, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number; tag: string }[] };
  const names = new Map(journal.entries.map((entry) => [String(entry.when), entry.tag]));
  return added.map((at) => names.get(at) ?? `migration of ${at}`).sort();
}

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { MIGRATION_LOCK, openDatabase } from '../../src/store/database.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { ROOT, waitFor } from '../helpers/gateway.js';

const hasPostgres = await postgresAvailable();

/** A connection to `database` as its superuser, for what a test does behind the replicas' backs. */
function adminOf(database: TestDatabase): postgres.Sql {
  return postgres(database.url!, { max: 2, onnotice: () => {} });
}

/** Holds the migration lock, as a replica migrating, until `release()`. */
async function holdMigrationLock(admin: postgres.Sql): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const transaction = admin.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    held();
    await released;
  });
  await holding;
  return {
    release: async () => {
      release();
      await transaction;
    },
  };
}

describe.skipIf(!hasPostgres)('migrations of replicas starting together', () => {
  it('succeed on every replica, one after another, and leave one copy of each table', async () => {
    const database = await freshPostgres();
    const replicas = await Promise.all([1, 2, 3, 4].map(() => database.open()));
    try {
      const outcomes = await Promise.allSettled(replicas.map((replica) => replica.migrate()));
      expect(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : o.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
      // Each migration applied once: the journal has no duplicates.
      const journal = (await replicas[0]!.db.execute('select hash from drizzle.__drizzle_migrations')) as unknown as { hash: string }[];
      expect(new Set(journal.map((row) => row.hash)).size).toBe(journal.length);
      expect(journal.length).toBeGreaterThan(0);
    } finally {
      await Promise.all(replicas.map((replica) => replica.close()));
      await database.dispose();
    }
  });

  it('leave the lock free once done, even where releasing it explicitly would fail', async () => {
    const database = await freshPostgres();
    const admin = adminOf(database);
    // A role that may take the lock but not release it by hand (a failed unlock, every time).
    const role = `conflux_migrator_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await admin.unsafe(`create role ${role} login password '${password}'`);
    const url = new URL(database.url!);
    await admin.unsafe(`alter database ${url.pathname.slice(1)} owner to ${role}`);
    await admin.unsafe('revoke execute on function pg_advisory_unlock(bigint) from public');
    url.username = role;
    url.password = password;
    const replica = await openDatabase({ url: url.toString() });
    try {
      await replica.migrate();
      // The replica is still open, its connections pooled: none of them may keep the lock.
      const [{ free }] = (await admin`select pg_try_advisory_lock(${MIGRATION_LOCK}) as free`) as unknown as [{ free: boolean }];
      expect(free).toBe(true);
      await admin`select pg_advisory_unlock(${MIGRATION_LOCK})`;
      // And a second migration (another replica's, or this one's next start) is not blocked.
      await replica.migrate();
    } finally {
      await replica.close();
      await admin.end({ timeout: 1 });
      await database.dispose();
      const cleanup = postgres(database.url!.replace(/\/[^/]+$/, '/postgres'), { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop role if exists ${role}`);
      await cleanup.end({ timeout: 1 });
    }
  });

  it('say so while one waits for another replica to finish, and go on when it has', async () => {
    const database = await freshPostgres();
    const admin = adminOf(database);
    const said: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void said.push((JSON.parse(line) as { msg: string }).msg) });
    const replica = await openDatabase({ url: database.url, logger });
    try {
      const lock = await holdMigrationLock(admin);
      let migrated = false;
      const migration = replica.migrate().then(() => (migrated = true));
      await waitFor(() => said.length > 0, 10_000, 'the wait to be reported');
      expect(said).toEqual(['another replica is migrating the database; waiting for it to finish']);
      expect(migrated).toBe(false);
      await lock.release();
      await migration;
      const journal = (await replica.db.execute('select hash from drizzle.__drizzle_migrations')) as unknown as { hash: string }[];
      expect(journal.length).toBeGreaterThan(0);
    } finally {
      await replica.close();
      await admin.end({ timeout: 1 });
      await database.dispose();
    }
  });

  it('a gateway stopped while it waits for the lock exits cleanly, without having migrated', async () => {
    const database = await freshPostgres();
    const admin = adminOf(database);
    const dir = await mkdtemp(join(tmpdir(), 'conflux-migrate-'));
    const config = join(dir, 'mcp-servers.yaml');
    await writeFile(config, 'gateway:\n  port: 0\nservers: {}\n');
    const lock = await holdMigrationLock(admin);
    const child = spawn(process.execPath, [...nodeArgs('src/cli.ts'), 'serve', '--config', config], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: database.url, LOG_LEVEL: 'info', CONFLUX_DATA_DIR: dir, CONFLUX_WORKERS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      await waitFor(() => stderr.includes('another replica is migrating'), 60_000, 'the gateway to wait for the lock');
      child.kill('SIGTERM');
      expect(await exited).toEqual([0, null]);
      expect(stderr).toContain('stopped while starting');
      const [{ tables }] = (await admin`select count(*)::int as tables from information_schema.tables where table_schema = 'public'`) as unknown as [{ tables: number }];
      expect(tables).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await lock.release();
      await admin.end({ timeout: 1 });
      await database.dispose();
    }
  }, 90_000);
});

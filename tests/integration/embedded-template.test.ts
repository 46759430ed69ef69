import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireDataDirLock, readDataDirLock } from '../../src/store/data-dir-lock.js';
import { MIGRATIONS, openDatabase, type Database, type OpenedDatabase } from '../../src/store/database.js';
import { creationMarker } from '../../src/store/embedded-creation.js';
import { buildPgliteTemplate } from '../../src/store/pglite-template-build.js';
import { installedPgliteVersion, readTemplate, type TemplateManifest } from '../../src/store/pglite-template.js';
import * as schema from '../../src/store/schema.js';
import { ServerRepository } from '../../src/store/server-repository.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { ROOT } from '../helpers/gateway.js';

const run = promisify(execFile);
const CREATION_CHILD = resolve(ROOT, 'tests/fixtures/embedded-creation-child.ts');

/** Every migration in drizzle/, as `migrate()` names them. */
const journal = JSON.parse(await readFile(join(MIGRATIONS, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
const ALL_MIGRATIONS = journal.entries.map((entry) => entry.tag).sort();

async function opened(dataDir: string, templateDir: string): Promise<{ database: OpenedDatabase; lines: string[] }> {
  const lines: string[] = [];
  const database = await openDatabase({ dataDir, templateDir, progress: (line) => lines.push(line) });
  return { database, lines };
}

/** How many migrations the database records as applied. */
async function recordedMigrations(database: OpenedDatabase): Promise<number> {
  const result = (await database.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`)) as unknown as { rows: { n: number }[] };
  return result.rows[0]!.n;
}

/** The registry works: a server stored through the repository is read back. */
async function storesAServer(database: OpenedDatabase, name: string): Promise<string[]> {
  const servers = new ServerRepository(database.db);
  expect(await servers.insert(name, { url: 'http://127.0.0.1:9/mcp' })).toBe(true);
  return (await servers.list()).map((server) => server.name);
}

/** Puts `tarball` in the template in `dir`, its manifest made to agree. */
async function replaceTarball(dir: string, tarball: Uint8Array): Promise<void> {
  await writeFile(join(dir, 'pgdata.tar.gz'), tarball);
  await rewriteManifest(dir, (manifest) => ({ ...manifest, tarball: { sha256: createHash('sha256').update(tarball).digest('hex'), bytes: tarball.length } }));
}

async function rewriteManifest(dir: string, change: (manifest: TemplateManifest) => TemplateManifest): Promise<void> {
  const path = join(dir, 'manifest.json');
  await writeFile(path, JSON.stringify(change(JSON.parse(await readFile(path, 'utf8')) as TemplateManifest)));
}

describe('the embedded database made from the migrated template', () => {
  let temp: string;
  let templateDir: string;
  let stuckTemplates = 0;

  /**
   * Starts a creation of the database in `dataDir` in another process, and kills it (SIGKILL)
   * once the creation is marked: what a kill mid-creation leaves, the process's lock included.
   * With `crash`, the process crashes there instead (an uncaught error: it exits through 'exit').
   */
  async function creationCutShort(dataDir: string, how: 'kill' | 'crash' = 'kill'): Promise<void> {
    const stuck = join(temp, `stuck-template-${++stuckTemplates}`);
    await mkdir(stuck);
    await run('mkfifo', [join(stuck, 'manifest.json')]);
    const child = spawn(process.execPath, [...nodeArgs(CREATION_CHILD), dataDir, stuck, ...(how === 'crash' ? ['crash'] : [])], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      if (how === 'crash') {
        expect(await exited).toBe(1);
        return;
      }
      await expect.poll(() => existsSync(creationMarker(dataDir)), { timeout: 60_000, interval: 20 }).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  }

  /**
   * A database made in `dataDir` the way a version of Conflux from before the creation mark did:
   * the folder's lock taken (a stale one taken over), PGlite started on the folder (here filled
   * from the template, for speed), migrated, a server stored, closed, the lock released.
   */
  async function madeByAVersionWithoutTheMark(dataDir: string, server: string): Promise<void> {
    const lock = await acquireDataDirLock(dataDir);
    try {
      const template = await readTemplate(templateDir, MIGRATIONS);
      if (!('tarball' in template)) throw new Error(template.unusable);
      const client = new PGlite({ dataDir, loadDataDir: template.tarball });
      try {
        const db = drizzle(client, { schema });
        await migrate(db, { migrationsFolder: MIGRATIONS });
        expect(await new ServerRepository(db as unknown as Database).insert(server, { url: 'http://127.0.0.1:9/mcp' })).toBe(true);
      } finally {
        await client.close();
      }
    } finally {
      await lock.release();
    }
  }

  beforeAll(async () => {
    temp = await mkdtemp(join(tmpdir(), 'conflux-embedded-template-'));
    templateDir = join(temp, 'template');
    expect((await buildPgliteTemplate(templateDir)).built).toBe(true);
  });
  afterAll(async () => {
    if (temp) await rm(temp, { recursive: true, force: true });
  });

  it('is described by a manifest naming the installed PGlite, and kept while it fits', async () => {
    const manifest = JSON.parse(await readFile(join(templateDir, 'manifest.json'), 'utf8')) as TemplateManifest;
    expect(manifest.pglite).toBe(await installedPgliteVersion());
    expect(manifest.tarball.bytes).toBe((await readFile(join(templateDir, 'pgdata.tar.gz'))).length);
    const again = await buildPgliteTemplate(templateDir);
    expect(again.built).toBe(false);
    expect(again.manifest).toEqual(manifest);
  });

  it('fills a new data folder, already migrated, and the folder keeps its own database from then on', async () => {
    const dataDir = join(temp, 'fresh', 'pgdata');
    const first = await opened(dataDir, templateDir);
    try {
      expect(first.database.createdFrom).toBe('template');
      expect(first.lines[0]).toBe(`creating the embedded database in ${dataDir} from the migrated template (first start only)…`);
      expect(first.lines[1]).toMatch(/^embedded database created in [\d.]+ s from the template$/);
      expect(await readdir(join(temp, 'fresh'))).toEqual(['pgdata', 'pgdata.lock']); // no creation mark left
      expect(await first.database.migrate()).toEqual([]);
      expect(await recordedMigrations(first.database)).toBe(ALL_MIGRATIONS.length);
      expect(await storesAServer(first.database, 'weather')).toEqual(['weather']);
    } finally {
      await first.database.close();
    }

    // The folder has a database now: opened as it is, never filled from the template again.
    const second = await opened(dataDir, templateDir);
    try {
      expect(second.database.createdFrom).toBeUndefined();
      expect(second.lines).toEqual([]);
      expect(await second.database.migrate()).toEqual([]);
      expect((await new ServerRepository(second.database.db).list()).map((server) => server.name)).toEqual(['weather']);
    } finally {
      await second.database.close();
    }
  });

  it('starts an interrupted creation again from an empty folder instead of opening what it left', async () => {
    const dataDir = join(temp, 'interrupted', 'pgdata');
    await creationCutShort(dataDir);
    // What a creation killed further along leaves: PG_VERSION is written before the configuration
    // files, so the folder alone looks finished; the mark beside it, and the lock its process
    // left, say it is not.
    await writeFile(join(dataDir, 'PG_VERSION'), '17\n');
    await writeFile(join(dataDir, 'half-written'), 'x');
    const { database, lines } = await opened(dataDir, templateDir);
    try {
      expect(lines[0]).toBe(`an earlier creation of the embedded database in ${dataDir} did not finish; starting it again`);
      expect(database.createdFrom).toBe('template');
      expect(await readdir(join(temp, 'interrupted'))).toEqual(['pgdata', 'pgdata.lock']);
      expect((await readdir(dataDir)).includes('half-written')).toBe(false);
      expect(await database.migrate()).toEqual([]);
      expect(await storesAServer(database, 'weather')).toEqual(['weather']);
    } finally {
      await database.close();
    }
  });

  it('keeps a database made, after a creation was cut short, by a version that does not know the mark', async () => {
    const dataDir = join(temp, 'made-since', 'pgdata');
    await creationCutShort(dataDir);
    await madeByAVersionWithoutTheMark(dataDir, 'kept');
    expect(existsSync(creationMarker(dataDir))).toBe(true);

    const { database, lines } = await opened(dataDir, templateDir);
    try {
      expect(lines).toEqual([`${creationMarker(dataDir)} is left from a creation that did not finish, but ${dataDir} was used since: its database is kept`]);
      expect(database.createdFrom).toBeUndefined();
      expect(await database.migrate()).toEqual([]);
      expect((await new ServerRepository(database.db).list()).map((server) => server.name)).toEqual(['kept']);
      expect(await readdir(join(temp, 'made-since'))).toEqual(['pgdata', 'pgdata.lock']); // the mark that covered nothing is gone
    } finally {
      await database.close();
    }
  });

  it('keeps a database made by such a version after a failed creation of the previous one left its mark', async () => {
    // The previous version's mark held its pid alone, and stayed when its creation failed; the
    // failed start released the folder's lock.
    const dataDir = join(temp, 'made-after-failure', 'pgdata');
    await mkdir(dataDir, { recursive: true });
    await writeFile(creationMarker(dataDir), `${process.pid}\n`);
    await madeByAVersionWithoutTheMark(dataDir, 'kept');

    const { database, lines } = await opened(dataDir, templateDir);
    try {
      expect(lines).toHaveLength(1);
      expect(database.createdFrom).toBeUndefined();
      expect((await new ServerRepository(database.db).list()).map((server) => server.name)).toEqual(['kept']);
      expect(existsSync(creationMarker(dataDir))).toBe(false);
    } finally {
      await database.close();
    }
  });

  it('leaves no mark of a creation whose process crashed mid-way, since its lock went with it', async () => {
    const dataDir = join(temp, 'crashed', 'pgdata');
    await creationCutShort(dataDir, 'crash');
    // A mark left now would cover nothing (the lock it names is gone): the creation took it back.
    expect(await readdir(join(temp, 'crashed'))).toEqual(['pgdata']);
    expect(await readDataDirLock(dataDir)).toBeUndefined();

    const { database } = await opened(dataDir, templateDir);
    try {
      expect(database.createdFrom).toBe('template');
      expect(await storesAServer(database, 'after-crash')).toEqual(['after-crash']);
    } finally {
      await database.close();
    }
  });

  it('creates the database by initdb when the template was made by another PGlite', async () => {
    const other = join(temp, 'other-pglite');
    await cp(templateDir, other, { recursive: true });
    await rewriteManifest(other, (manifest) => ({ ...manifest, pglite: '0.0.1' }));
    const dataDir = join(temp, 'mismatch', 'pgdata');
    const { database, lines } = await opened(dataDir, other);
    try {
      expect(database.createdFrom).toBe('initdb');
      expect(lines[0]).toBe(
        `creating the embedded database in ${dataDir} (first start only; not from a template: the template was made by PGlite 0.0.1, and ${await installedPgliteVersion()} is installed)…`,
      );
      expect(lines[1]).toMatch(/^embedded database created in [\d.]+ s$/);
      expect(await database.migrate()).toEqual(ALL_MIGRATIONS);
      expect(await storesAServer(database, 'mismatch')).toEqual(['mismatch']);
    } finally {
      await database.close();
    }
  });

  it('creates the database by initdb when the tarball is corrupt', async () => {
    const corrupt = join(temp, 'corrupt');
    await cp(templateDir, corrupt, { recursive: true });
    // Cut short, and the manifest made to agree: what a checksum cannot catch, unpacking does.
    const whole = await readFile(join(corrupt, 'pgdata.tar.gz'));
    await replaceTarball(corrupt, whole.subarray(0, whole.length >> 1));
    const dataDir = join(temp, 'corrupt-load', 'pgdata');
    const { database, lines } = await opened(dataDir, corrupt);
    try {
      expect(database.createdFrom).toBe('initdb');
      expect(lines[0]).toBe(
        `creating the embedded database in ${dataDir} (first start only; not from a template: the template's tarball ${join(corrupt, 'pgdata.tar.gz')} cannot be unpacked (unexpected end of file))…`,
      );
      expect(await database.migrate()).toEqual(ALL_MIGRATIONS);
      expect(await storesAServer(database, 'corrupt')).toEqual(['corrupt']);
    } finally {
      await database.close();
    }
  });

  it('creates the database by initdb when PGlite cannot start what the template holds, with nothing of it left behind', async () => {
    const broken = join(temp, 'not-a-database');
    await cp(templateDir, broken, { recursive: true });
    const contents = join(temp, 'not-a-database-contents');
    await mkdir(contents);
    await writeFile(join(contents, 'PG_VERSION'), '17\n');
    await writeFile(join(contents, 'left-behind'), 'from the template');
    await run('tar', ['-cf', join(temp, 'not-a-database.tar'), '-C', contents, '.']);
    await replaceTarball(broken, gzipSync(await readFile(join(temp, 'not-a-database.tar'))));
    const dataDir = join(temp, 'failed-load', 'pgdata');
    const { database, lines } = await opened(dataDir, broken);
    try {
      expect(database.createdFrom).toBe('initdb');
      expect(lines[0]).toBe(`creating the embedded database in ${dataDir} from the migrated template (first start only)…`);
      expect(lines[1]).toBe(`the template did not load (PGlite failed to initialize properly); creating the embedded database in ${dataDir} instead…`);
      expect(await database.migrate()).toEqual(ALL_MIGRATIONS);
      expect(await storesAServer(database, 'recovered')).toEqual(['recovered']);
      expect(await readdir(dataDir)).not.toContain('left-behind');
    } finally {
      await database.close();
    }
  });

  it('leaves a folder that holds anything alone: one without a database is created by initdb, its files kept', async () => {
    const dataDir = join(temp, 'not-empty', 'pgdata');
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'notes.txt'), 'kept');
    const { database, lines } = await opened(dataDir, templateDir);
    try {
      expect(database.createdFrom).toBe('initdb');
      expect(lines[0]).toBe(`creating the embedded database in ${dataDir} (first start only; not from a template: ${dataDir} is not empty)…`);
      expect(await database.migrate()).toEqual(ALL_MIGRATIONS);
      expect(await readFile(join(dataDir, 'notes.txt'), 'utf8')).toBe('kept');
    } finally {
      await database.close();
    }
  });

  it('is not used when it does not fit: other migrations, an unreadable manifest, a damaged tarball, none at all', async () => {
    const migrations = join(temp, 'other-migrations');
    await cp(MIGRATIONS, migrations, { recursive: true });
    // A stray file beside the migrations (an editor's backup) is not a migration.
    await writeFile(join(migrations, '0000_notes.sql~'), 'not applied');
    expect('tarball' in (await readTemplate(templateDir, migrations))).toBe(true);
    const journal = JSON.parse(await readFile(join(migrations, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
    const last = join(migrations, `${journal.entries.at(-1)!.tag}.sql`);
    await writeFile(last, `${await readFile(last, 'utf8')}\n--> statement-breakpoint\ncreate table more (id int);`);
    expect(await readTemplate(templateDir, migrations)).toEqual({ unusable: 'the template was made from other migrations than those installed' });

    const unreadable = join(temp, 'unreadable');
    await cp(templateDir, unreadable, { recursive: true });
    await writeFile(join(unreadable, 'manifest.json'), '{"format": 2}');
    expect(await readTemplate(unreadable, MIGRATIONS)).toEqual({ unusable: `the template's manifest ${join(unreadable, 'manifest.json')} is not one this version reads` });

    const damaged = join(temp, 'damaged');
    await cp(templateDir, damaged, { recursive: true });
    const bytes = await readFile(join(damaged, 'pgdata.tar.gz'));
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(join(damaged, 'pgdata.tar.gz'), bytes);
    expect(await readTemplate(damaged, MIGRATIONS)).toEqual({ unusable: `the template's tarball ${join(damaged, 'pgdata.tar.gz')} is missing or does not match its manifest` });

    const none = join(temp, 'none');
    expect(await readTemplate(none, MIGRATIONS)).toEqual({ unusable: `there is no template in ${none}` });
    expect('tarball' in (await readTemplate(templateDir, MIGRATIONS))).toBe(true);
  });

  it('is built by a script that reports a failure and exits 0, so that an install never fails for it', async () => {
    const script = join(ROOT, 'scripts/build-pglite-template.ts');
    const blocked = join(temp, 'a-file');
    await writeFile(blocked, '');
    const failed = await run(process.execPath, [...nodeArgs(script), '--out', join(blocked, 'template')], { cwd: ROOT });
    expect(failed.stdout).toMatch(/^conflux: the embedded database template was not built \(.+\); a first start will create the database itself, which takes longer\n$/);

    const kept = await run(process.execPath, [...nodeArgs(script), '--out', templateDir], { cwd: ROOT });
    expect(kept.stdout).toMatch(/^conflux: embedded database template in .+ is up to date \(PGlite [\d.]+\)\n$/);
  });
});

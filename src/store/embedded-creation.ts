import { existsSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { z } from 'zod';
import type { LockHolder } from './data-dir-lock.js';
import { readTemplate } from './pglite-template.js';

/** How a new embedded database was made: loaded from the migrated template, or created by initdb. */
export type CreatedFrom = 'template' | 'initdb';

export interface CreateEmbeddedOptions {
  /** The folder of the template to try first (see pglite-template.ts). */
  templateDir: string;
  migrationsFolder: string;
  /** The token of the folder's lock this process holds: the mark names it (see `creationMarker`). */
  lockToken: string;
  /** The folder holds what an interrupted creation left (see `planEmbeddedFolder`): it is emptied first. */
  afresh: boolean;
  /** Starts PGlite on the folder, filled from `tarball` when one is given, and waits until it is ready. */
  start(tarball: Blob | undefined): Promise<PGlite>;
  /** Told which way the database is made and, once made, how long it took. */
  progress?: ((line: string) => void) | undefined;
}

/**
 * The mark of a creation under way: `<data folder>.creating`, beside the folder like its lock.
 * Neither the template's unpacking nor initdb writes the folder in an order that tells a finished
 * database from one cut short (PG_VERSION comes before the configuration files), so the mark says
 * which. It names the lock its creation ran under: while the lock left on the folder is still
 * that one, no process has held the folder since, and what it holds is that creation's remains.
 * Any later holder (an older Conflux that knows no mark, creating the database itself) replaced
 * that lock, and removed its own on leaving: the mark then covers nothing, and a database made
 * since is never taken for remains.
 */
export function creationMarker(dataDir: string): string {
  return `${resolve(dataDir)}.creating`;
}

/** What a mark holds: the creating process and the token of its lock (the previous version wrote the pid alone). */
const MarkSchema = z.object({ pid: z.number().int().positive(), token: z.string().min(1) });

export interface CreationMark {
  pid: number;
  /** Absent from a mark of the previous version. */
  token?: string | undefined;
  /** When the mark was written (its modification time, ms). */
  writtenAt: number;
}

/**
 * Whether the creation `mark` names is what the folder holds: the lock left on the folder (as
 * found before this process took it) is that creation's own. Pure.
 */
export function markCoversFolder(mark: CreationMark, leftLock: LockHolder | undefined): boolean {
  if (!leftLock) return false;
  if (mark.token !== undefined) return leftLock.token === mark.token;
  // The previous version's mark, its pid alone: written after that process took the lock.
  return leftLock.pid === mark.pid && Date.parse(leftLock.acquiredAt) <= mark.writtenAt;
}

/** What opening an embedded data folder starts with. */
export interface FolderPlan {
  /** The folder has no database yet, or only an interrupted creation's remains. */
  create: boolean;
  /** What the folder holds is an interrupted creation's remains: emptied before creating. */
  afresh: boolean;
  /** A mark is there that covers nothing: the folder is opened or created as if it were not, and the mark removed. */
  staleMark: boolean;
}

/**
 * What opening `dataDir` starts with, given the lock found on it before this process took it
 * (`leftLock`): a folder with a database is opened, one without is created, and one that a mark
 * covers (`markCoversFolder`) is emptied and created again. Where the mark covers nothing, or
 * cannot be read, the folder is left as it is: an unneeded creation costs seconds, a database
 * taken for remains would cost all it held.
 */
export async function planEmbeddedFolder(dataDir: string, leftLock: LockHolder | undefined): Promise<FolderPlan> {
  const hasDatabase = existsSync(join(dataDir, 'PG_VERSION'));
  const mark = await readMark(creationMarker(dataDir));
  if (mark === undefined) return { create: !hasDatabase, afresh: false, staleMark: false };
  if (mark !== 'unreadable' && markCoversFolder(mark, leftLock)) return { create: true, afresh: true, staleMark: false };
  return { create: !hasDatabase, afresh: false, staleMark: true };
}

/** Opens the database of a folder beside which a mark covers nothing, and removes the mark once it opened. */
export async function openPastStaleMark(dataDir: string, open: () => Promise<PGlite>, progress?: (line: string) => void): Promise<PGlite> {
  const marker = creationMarker(dataDir);
  progress?.(`${marker} is left from a creation that did not finish, but ${resolve(dataDir)} was used since: its database is kept`);
  const client = await open();
  await rm(marker, { force: true });
  return client;
}

/**
 * Creates the embedded database in `dataDir`, a folder without one (the caller holds its lock):
 * from the template where it fits and the folder is empty, by initdb otherwise. A template that
 * fails to load is not fatal: what it wrote is removed and the database is created by initdb.
 * The creation is marked until the database is ready, so a creation cut short (a kill, a power
 * cut) is started again from an empty folder rather than opened half made. One that fails, or
 * whose process exits meanwhile, takes back what it wrote, mark included: it gives up the
 * folder's lock, and after that its mark would cover nothing.
 */
export async function createEmbeddedDatabase(dataDir: string, options: CreateEmbeddedOptions): Promise<{ client: PGlite; createdFrom: CreatedFrom }> {
  const where = resolve(dataDir);
  const { progress } = options;
  const marker = creationMarker(dataDir);
  // Marked before anything is removed or written, so that emptying cut short is started again too.
  await writeMark(marker, { pid: process.pid, token: options.lockToken });
  const takeBackAtExit = () => takeBackSync(dataDir, marker);
  process.on('exit', takeBackAtExit);
  let created: { client: PGlite; createdFrom: CreatedFrom };
  try {
    if (options.afresh) {
      progress?.(`an earlier creation of the embedded database in ${where} did not finish; starting it again`);
      await emptyFolder(dataDir);
    }
    created = await createIn(dataDir, where, options);
  } catch (error) {
    process.off('exit', takeBackAtExit);
    // Failing to take back leaves the mark: the folder is then opened as it is, and says what is wrong with it.
    await emptyFolder(dataDir).then(
      () => rm(marker, { force: true }),
      () => {},
    );
    throw error;
  }
  process.off('exit', takeBackAtExit);
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

/** `emptyFolder` and the mark's removal, for a process exiting mid-creation (no awaiting there). */
function takeBackSync(dataDir: string, marker: string): void {
  try {
    for (const name of readdirSync(dataDir)) rmSync(join(dataDir, name), { recursive: true, force: true });
    unlinkSync(marker);
  } catch {
    // Exiting: the mark stays, and the next open finds the folder's lock gone (see `creationMarker`).
  }
}

/** Written whole under another name and renamed into place: a mark is never read half written. */
async function writeMark(marker: string, mark: z.infer<typeof MarkSchema>): Promise<void> {
  const draft = `${marker}.${mark.token}`;
  await writeFile(draft, `${JSON.stringify(mark)}\n`);
  await rename(draft, marker);
}

async function readMark(marker: string): Promise<CreationMark | 'unreadable' | undefined> {
  let text: string;
  let writtenAt: number;
  try {
    [text, { mtimeMs: writtenAt }] = await Promise.all([readFile(marker, 'utf8'), stat(marker)]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (/^\d+\n?$/.test(text)) return { pid: Number(text), writtenAt };
  try {
    const parsed = MarkSchema.safeParse(JSON.parse(text));
    return parsed.success ? { ...parsed.data, writtenAt } : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { z } from 'zod';
import { TarballBlob } from './tarball-blob.js';

/**
 * A migrated embedded database, made once when the package is installed or packed (`prepare`),
 * that a new data folder starts from. Creating a database on the user's machine (PGlite's
 * initdb) took 8–14 s of a 10–16 s first start and took the process to about 800 MiB; loading
 * this copy takes about 2 s and 365 MiB (docs/benchmarks.md#embedded-database-first-start).
 *
 * A template is used only where its manifest says it was made by the installed PGlite from the
 * migrations now in drizzle/: a data folder's format belongs to the PGlite that wrote it, and a
 * database from other migrations would be recorded as migrated by ones it never ran.
 */

/** Where `npm run build:template` leaves it: inside dist/, which the package ships and git ignores. */
export const DEFAULT_TEMPLATE_DIR = fileURLToPath(new URL('../../dist/pglite-template', import.meta.url));

const TARBALL = 'pgdata.tar.gz';
const gunzipAsync = promisify(gunzip);
const MANIFEST = 'manifest.json';

const TemplateManifestSchema = z.object({
  format: z.literal(1),
  /** The version of @electric-sql/pglite that made it. */
  pglite: z.string().min(1),
  /** `migrationsDigest()` of the migrations it holds. */
  migrations: z.string().regex(/^[0-9a-f]{64}$/),
  /** sha256 of the tarball: a damaged or half-replaced one is never handed to PGlite. */
  tarball: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().positive() }),
  createdAt: z.string(),
});

export type TemplateManifest = z.infer<typeof TemplateManifestSchema>;

/** A template fit to load (`tarball`, unpacked, for PGlite's `loadDataDir`), or why there is none. */
export type TemplateLookup = { tarball: Blob; manifest: TemplateManifest } | { unusable: string };

/**
 * sha256 over what the migrator applies: drizzle's journal and the SQL file of each entry it
 * lists, names included. Any change there makes a template of the old ones unusable; a stray file
 * beside them (an editor's backup) does not.
 */
export async function migrationsDigest(folder: string): Promise<string> {
  const hash = createHash('sha256');
  const journalPath = join('meta', '_journal.json');
  const journal = await readFile(join(folder, journalPath));
  const { entries } = JournalSchema.parse(JSON.parse(journal.toString('utf8')));
  hash.update(`meta/_journal.json\0${journal.length}\0`).update(journal);
  for (const { tag } of entries) {
    const content = await readFile(join(folder, `${tag}.sql`));
    hash.update(`${tag}.sql\0${content.length}\0`).update(content);
  }
  return hash.digest('hex');
}

const JournalSchema = z.object({ entries: z.array(z.object({ tag: z.string().regex(/^[\w.-]+$/) })) });

/**
 * The installed @electric-sql/pglite's version. Its package.json is not among its exports, so it
 * is found by walking up from the module Node resolves.
 */
export async function installedPgliteVersion(): Promise<string> {
  let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  for (;;) {
    const manifest = await readFile(join(dir, 'package.json'), 'utf8').then(
      (text) => JSON.parse(text) as { name?: unknown; version?: unknown },
      () => undefined,
    );
    if (manifest?.name === '@electric-sql/pglite' && typeof manifest.version === 'string') return manifest.version;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('the package.json of @electric-sql/pglite was not found');
    dir = parent;
  }
}

/** The template in `dir`, if it was made by the installed PGlite from the migrations in `migrationsFolder`. */
export async function readTemplate(dir: string, migrationsFolder: string): Promise<TemplateLookup> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { unusable: `there is no template in ${dir}` };
    throw error;
  }
  let manifest: TemplateManifest;
  try {
    manifest = TemplateManifestSchema.parse(JSON.parse(text));
  } catch {
    return { unusable: `the template's manifest ${join(dir, MANIFEST)} is not one this version reads` };
  }
  const pglite = await installedPgliteVersion();
  if (manifest.pglite !== pglite) return { unusable: `the template was made by PGlite ${manifest.pglite}, and ${pglite} is installed` };
  if (manifest.migrations !== (await migrationsDigest(migrationsFolder))) return { unusable: 'the template was made from other migrations than those installed' };
  const bytes = await readFile(join(dir, TARBALL)).catch(() => undefined);
  if (!bytes || createHash('sha256').update(bytes).digest('hex') !== manifest.tarball.sha256) {
    return { unusable: `the template's tarball ${join(dir, TARBALL)} is missing or does not match its manifest` };
  }
  // Unpacked here rather than by PGlite, which leaves a rejected promise unhandled when it cannot
  // (PGlite 0.5.16's loadTar writes to a DecompressionStream without awaiting it); gzip's own
  // checksum also vouches for what it unpacks.
  const tar = await gunzipAsync(bytes).catch((error: unknown) => (error as Error));
  if (tar instanceof Error) return { unusable: `the template's tarball ${join(dir, TARBALL)} cannot be unpacked (${tar.message})` };
  return { tarball: new TarballBlob(tar), manifest };
}

/**
 * Stores `tarball` (PGlite's `dumpDataDir('gzip')` of a database migrated from
 * `migrationsFolder`) as the template in `dir`. Each file is written whole under another name and
 * renamed into place, the manifest last: a start that reads them meanwhile finds the old pair, or
 * a tarball whose checksum its manifest does not have, which it does not use.
 */
export async function writeTemplate(dir: string, tarball: Uint8Array, migrationsFolder: string): Promise<TemplateManifest> {
  const manifest: TemplateManifest = {
    format: 1,
    pglite: await installedPgliteVersion(),
    migrations: await migrationsDigest(migrationsFolder),
    tarball: { sha256: createHash('sha256').update(tarball).digest('hex'), bytes: tarball.byteLength },
    createdAt: new Date().toISOString(),
  };
  await mkdir(dir, { recursive: true });
  await replaceFile(join(dir, TARBALL), tarball);
  await replaceFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function replaceFile(path: string, content: string | Uint8Array): Promise<void> {
  const draft = `${path}.${process.pid}`;
  try {
    await writeFile(draft, content);
    await rename(draft, path);
  } catch (error) {
    await rm(draft, { force: true });
    throw error;
  }
}

import { mkdir } from 'node:fs/promises';
import type { PGlite } from '@electric-sql/pglite';
import { MIGRATIONS, openDatabase } from './database.js';
import { DEFAULT_TEMPLATE_DIR, readTemplate, writeTemplate, type TemplateManifest } from './pglite-template.js';

/**
 * Makes the migrated template in `dir` (default the package's): an in-memory PGlite opened as the
 * gateway opens one, migrated, and dumped as a gzipped tarball. Takes as long as a first start
 * without a template did, which is the point: it is paid once, at install time, not by each user.
 * A template already there that fits the installed PGlite and migrations is kept (`built: false`).
 */
export async function buildPgliteTemplate(dir: string = DEFAULT_TEMPLATE_DIR): Promise<{ built: boolean; manifest: TemplateManifest }> {
  const current = await readTemplate(dir, MIGRATIONS).catch(() => undefined);
  if (current && 'tarball' in current) return { built: false, manifest: current.manifest };
  await mkdir(dir, { recursive: true }); // a place that cannot be written fails now, not after the seconds below
  const database = await openDatabase({});
  try {
    await database.migrate();
    // Drizzle keeps the client it was given; the store's interface has no other use for a dump.
    const client = (database.db as unknown as { $client: PGlite }).$client;
    const tarball = new Uint8Array(await (await client.dumpDataDir('gzip')).arrayBuffer());
    return { built: true, manifest: await writeTemplate(dir, tarball, MIGRATIONS) };
  } finally {
    await database.close();
  }
}

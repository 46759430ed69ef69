/**
 * `npm run build:template`, run by `prepare` after the build (so by `npm install` and `npm ci` in
 * a checkout, and by `npm pack` before packing): makes the migrated embedded database that a new
 * data folder starts from, in dist/pglite-template/ (see src/store/pglite-template.ts). Keeps a
 * template that still fits. Never fails the install: without a template a first start creates
 * the database itself, as it always could, only slower.
 *
 *   npx tsx scripts/build-pglite-template.ts [--out DIR]
 */
import { isAbsolute, relative } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const started = performance.now();
try {
  // Imported here, so that even a module that fails to load is reported below rather than failing the install.
  const { buildPgliteTemplate } = await import('../src/store/pglite-template-build.js');
  const { DEFAULT_TEMPLATE_DIR } = await import('../src/store/pglite-template.js');
  const dir = values.out ?? DEFAULT_TEMPLATE_DIR;
  const { built, manifest } = await buildPgliteTemplate(dir);
  const inside = relative(process.cwd(), dir);
  const where = inside && !inside.startsWith('..') && !isAbsolute(inside) ? inside : dir;
  console.log(
    built
      ? `conflux: embedded database template built in ${((performance.now() - started) / 1000).toFixed(1)} s (${(manifest.tarball.bytes / 1024 / 1024).toFixed(1)} MiB, PGlite ${manifest.pglite}) in ${where}`
      : `conflux: embedded database template in ${where} is up to date (PGlite ${manifest.pglite})`,
  );
} catch (error) {
  console.log(`conflux: the embedded database template was not built (${(error as Error).message}); a first start will create the database itself, which takes longer`);
}

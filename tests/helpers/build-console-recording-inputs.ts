/**
 * `node --import tsx build-console-recording-inputs.ts <outDir> <inputsFile>`: builds the console
 * as `npm run build:console` does, into `outDir`, and writes to `inputsFile` (JSON) every file of
 * the repository the bundler read, relative to the repository, node_modules aside. Run as a
 * process of its own (see console-build.ts): a test run's NODE_ENV would make a development bundle.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { build } from 'vite';

const root = resolve(import.meta.dirname, '../..');
const [outDir, inputsFile] = process.argv.slice(2);
if (!outDir || !inputsFile) throw new Error('usage: build-console-recording-inputs.ts <outDir> <inputsFile>');

const read = new Set<string>();
await build({
  configFile: join(root, 'console/vite.config.ts'),
  logLevel: 'warn',
  build: { outDir: resolve(outDir), emptyOutDir: true },
  plugins: [
    {
      name: 'record-inputs',
      buildEnd() {
        for (const id of this.getModuleIds()) {
          const path = relative(root, id.split('?')[0]!);
          if (!path.startsWith('..') && !path.startsWith('node_modules') && existsSync(join(root, path))) read.add(path.split(sep).join('/'));
        }
      },
    },
  ],
});
await writeFile(inputsFile, JSON.stringify([...read].sort()));

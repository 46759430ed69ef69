import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerStages, type DockerStage } from '../helpers/deploy-parsers.js';
import { ROOT } from '../helpers/gateway.js';

const run = promisify(execFile);

/*
 * The image carries the embedded database template, as an npm install does: no Docker engine
 * runs the tests, so the build stage's own files (what it COPYs from the context) are put in a
 * folder of their own and its template step is run there, as `docker build` would run it.
 */

const stages = dockerStages(await readFile(join(ROOT, 'deploy/Dockerfile'), 'utf8'));
const runtime = stages.at(-1)!;
const build = stages.find((s) => s.name === 'build')!;
const instructions = (stage: DockerStage, name: string) => stage.instructions.filter((i) => i.name === name);

describe('the embedded database template in the image', { timeout: 240_000 }, () => {
  let folder: string | undefined;

  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('is built after the sources in the build stage, and reaches the final stage with dist/', () => {
    const runs = instructions(build, 'RUN').map((i) => i.args);
    const compile = runs.findIndex((args) => /^npm run build$/.test(args));
    const template = runs.findIndex((args) => args.includes('build:template'));
    expect(compile).toBeGreaterThan(-1);
    expect(template).toBeGreaterThan(compile);
    // A template missing fails the image's build, though it never fails an npm install.
    expect(runs[template]).toMatch(/&& test -f dist\/pglite-template\/manifest\.json$/);
    expect(instructions(runtime, 'COPY').some((i) => i.args === `--from=${build.name} /src/dist ./dist`)).toBe(true);
    // The migrations the template was made from are those the final stage carries.
    expect(instructions(runtime, 'COPY').some((i) => i.args === 'drizzle ./drizzle')).toBe(true);
  });

  it('can be made from what the build stage copies in, and nothing else', async () => {
    folder = await mkdtemp(join(tmpdir(), 'conflux-image-build-'));
    for (const copy of instructions(build, 'COPY')) {
      const [destination, ...sources] = copy.args.split(/\s+/).reverse();
      for (const source of sources) await cp(join(ROOT, source), destination!.endsWith('/') ? join(folder, source) : join(folder, destination!), { recursive: true });
    }
    // What `npm ci` gives the stage: the dependencies, dev ones included.
    await symlink(join(ROOT, 'node_modules'), join(folder, 'node_modules'), 'dir');
    const step = instructions(build, 'RUN').find((i) => i.args.includes('build:template'))!.args;
    const { stdout } = await run('sh', ['-c', step], { cwd: folder, env: { ...process.env, npm_config_update_notifier: 'false' } });
    expect(stdout).toMatch(/embedded database template (built|in .* is up to date)/);
    const manifest = JSON.parse(await readFile(join(folder, 'dist/pglite-template/manifest.json'), 'utf8')) as { pglite: string; tarball: { bytes: number } };
    expect((await stat(join(folder, 'dist/pglite-template/pgdata.tar.gz'))).size).toBe(manifest.tarball.bytes);
  });
});

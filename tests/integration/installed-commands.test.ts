import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_CONFIG_FILE } from '../../src/config/default-config-file.js';
import { readConfigFile } from '../../src/config/load.js';
import { packageBinFolders } from '../../src/config/server-files.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { ROOT, waitFor } from '../helpers/gateway.js';
import { runCliIn } from '../helpers/run-cli.js';
import { directDeps } from '../helpers/upstream-deps.js';

/*
 * A bare command that is not on PATH is looked for where npm installs bins: the config folder's
 * node_modules/.bin, then the gateway's own. `node dist/cli.js serve` and a global install put
 * neither on PATH, and the demo servers' commands are bins of the gateway's dependencies.
 */

/** A PATH with the system's programs and without any node_modules/.bin. */
const SYSTEM_PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((folder) => folder !== '' && !folder.includes('node_modules'))
  .join(delimiter);
const OWN_BIN = join(ROOT, 'node_modules', '.bin');

describe('stdio commands installed by npm rather than on PATH', { timeout: 120_000 }, () => {
  let project: string;
  let config: string;
  const opened: UpstreamConnection[] = [];

  beforeAll(async () => {
    project = await mkdtemp(join(tmpdir(), 'conflux-installed-'));
    const bin = join(project, 'node_modules', '.bin');
    await mkdir(bin, { recursive: true });
    // What `npm install` leaves in a project: an executable in node_modules/.bin.
    await writeFile(join(bin, 'conflux-local-tool'), '#!/bin/sh\necho local\n');
    await chmod(join(bin, 'conflux-local-tool'), 0o755);
    // Shadows the gateway's own copy: the project's comes first.
    await writeFile(join(bin, 'mcp-server-memory'), '#!/bin/sh\necho project memory\n');
    await chmod(join(bin, 'mcp-server-memory'), 0o755);
    config = join(project, 'mcp-servers.yaml');
    await writeFile(
      config,
      [
        'servers:',
        '  local: { command: conflux-local-tool }',
        '  memory: { command: mcp-server-memory }',
        '  everything: { command: mcp-server-everything, args: [stdio] }',
        '  system: { command: sh }',
        '  relative: { command: ./node_modules/.bin/conflux-local-tool }',
        '  missing: { command: conflux-nowhere-tool, enabled: false }',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await Promise.all(opened.map((c) => c.stop()));
    await rm(project, { recursive: true, force: true });
  });

  const commands = (loaded: Awaited<ReturnType<typeof readConfigFile>>) =>
    Object.fromEntries(Object.entries(loaded.config.servers).map(([name, s]) => [name, s.transport === 'stdio' ? s.command : undefined]));

  it("resolves a bare command off PATH to the config folder's node_modules/.bin, then to the gateway's own", async () => {
    const loaded = await readConfigFile(config, { PATH: SYSTEM_PATH }, { commands: 'error' });
    expect(commands(loaded)).toEqual({
      local: join(project, 'node_modules/.bin/conflux-local-tool'),
      memory: join(project, 'node_modules/.bin/mcp-server-memory'),
      everything: join(OWN_BIN, 'mcp-server-everything'),
      system: 'sh',
      relative: join(project, 'node_modules/.bin/conflux-local-tool'),
      missing: 'conflux-nowhere-tool',
    });
    expect(loaded.warnings).toEqual([]);
  });

  it('leaves a command found on PATH as it is written, to be found there when started', async () => {
    const loaded = await readConfigFile(config, { PATH: `${OWN_BIN}${delimiter}${SYSTEM_PATH}` }, { commands: 'error' });
    expect(commands(loaded)).toMatchObject({ everything: 'mcp-server-everything', memory: 'mcp-server-memory', local: join(project, 'node_modules/.bin/conflux-local-tool') });
  });

  it("looks beside the package too when npm put the gateway's dependencies next to it (npx)", () => {
    expect(packageBinFolders('/home/u/.npm/_npx/5f2a/node_modules/conflux-gateway')).toEqual([
      '/home/u/.npm/_npx/5f2a/node_modules/conflux-gateway/node_modules/.bin',
      '/home/u/.npm/_npx/5f2a/node_modules/.bin',
    ]);
    expect(packageBinFolders('/srv/conflux')).toEqual(['/srv/conflux/node_modules/.bin']);
    expect(packageBinFolders()).toEqual([OWN_BIN]);
  });

  it('connects to a demo server of the sample config with no node_modules/.bin on PATH', async () => {
    const loaded = await readConfigFile(SAMPLE_CONFIG_FILE, { PATH: SYSTEM_PATH }, { commands: 'error' });
    const everything = loaded.config.servers.everything!;
    expect(everything).toMatchObject({ command: join(OWN_BIN, 'mcp-server-everything') });
    const connection = new UpstreamConnection('everything', everything, directDeps());
    opened.push(connection);
    connection.start();
    await waitFor(() => connection.state === 'ready' || connection.lastError !== undefined, 60_000, 'the demo server to connect');
    expect(connection.lastError).toBeUndefined();
    expect(connection.state).toBe('ready');
    expect(connection.status().toolCount).toBeGreaterThan(0);
  });

  it('validate passes for the sample config run as `node dist/cli.js` would be, PATH without the bins', async () => {
    const result = await runCliIn(dirname(config), ['validate', '-c', SAMPLE_CONFIG_FILE], { PATH: SYSTEM_PATH, HOME: project, LOG_LEVEL: 'warn' });
    expect(result.stderr).not.toContain('not found on PATH');
    expect(result.code).toBe(0);
  });
});

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps } from '../helpers/upstream-deps.js';

/**
 * A connection stopped while its stdio child is still starting (a slow `npx` download, a server
 * that never answers the handshake) has that child gone when `stop()` resolves: whatever comes
 * next in its place (a config change, a new holder of a `processes: one` lease) may start its
 * own without two running at once.
 */

/** Writes its pid to the file it is given, then never answers anything. */
const SILENT = `require('node:fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000);`;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('a stdio connection stopped mid-handshake', () => {
  it('has stopped its child when stop() resolves, long before the connect timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-stop-connecting-'));
    const pidFile = join(dir, 'pid');
    const config = testConfig({ silent: { command: process.execPath, args: ['-e', SILENT, pidFile], connectTimeout: 120 } }).servers.silent!;
    const connection = new UpstreamConnection('silent', config, directDeps());
    let pid = 0;
    try {
      connection.start();
      await waitFor(async () => (pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'))) > 0, 30_000, 'the child to start');
      expect(connection.state).toBe('connecting');
      await connection.stop();
      expect(alive(pid)).toBe(false);
      expect(connection.state).not.toBe('ready');
    } finally {
      await connection.stop();
      if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});

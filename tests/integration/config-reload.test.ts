import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { callLoop } from '../helpers/call-loop.js';
import { startGatewayProcess } from '../helpers/gateway-processes.js';
import { connectClient, isAlive, stdioFixture, textOf, waitFor } from '../helpers/gateway.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

function capturedLogger(): { logger: Logger; lines: LogLine[]; about: (text: string) => LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines, about: (text) => lines.filter((line) => line.msg.includes(text)) };
}

const GATEWAY = { port: 0, reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

/** The config file's text: JSON, which is YAML too. */
function configText(servers: Record<string, unknown>, gateway: Record<string, unknown> = GATEWAY): string {
  return `${JSON.stringify({ gateway, servers }, null, 2)}\n`;
}

/** Replaces the file as editors do (a new file renamed over it), so the watch never reads it half written. */
async function replaceFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}

/** A gateway with the config file watched, started, with its upstreams settled. */
async function startWatched(path: string, logger: Logger): Promise<{ conflux: Conflux; url: string }> {
  const conflux = createConflux(await loadConfigFile(path, {}), { logger, configFile: { path, env: {} } });
  try {
    await conflux.start();
    const { url } = await conflux.listen('127.0.0.1', 0);
    await conflux.upstreams.settled(30_000);
    return { conflux, url };
  } catch (error) {
    await conflux.stop();
    throw error;
  }
}

async function reloads(conflux: Conflux, result: string): Promise<number> {
  return (await conflux.metrics.configReloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
}

async function pidOf(client: Client, tool: string): Promise<number> {
  return Number(textOf(await client.callTool({ name: tool, arguments: {} })));
}

describe('config reloads without gaps', () => {
  it('applies a description and tools.deny to the running server: same process, no call fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-reload-'));
    const path = join(dir, 'mcp-servers.yaml');
    await writeFile(path, configText({ files: stdioFixture('files') }));
    const { logger, about } = capturedLogger();
    const { conflux, url } = await startWatched(path, logger);
    const session = await connectClient(url);
    try {
      const entry = conflux.upstreams.get('files')!;
      const pid = await pidOf(session.client, 'files__pid');
      expect(entry.status().pid).toBe(pid);
      const before = conflux.catalog.current.tools.map((t) => t.name);
      expect(before).toContain('files__add');

      const loop = callLoop(session.client, 'files__echo', { text: 'hi' });
      await waitFor(() => loop.calls() >= 3, 30_000, 'calls before the edit');
      const listChanged = session.nextToolListChange();
      await replaceFile(path, configText({ files: { ...stdioFixture('files'), description: 'Files of the team', tags: ['team'], tools: { deny: ['add'] } } }));
      await waitFor(() => conflux.upstreams.get('files')?.config.description === 'Files of the team', 30_000, 'the reload');
      await listChanged;
      const atReload = loop.calls();
      await waitFor(() => loop.calls() >= atReload + 5, 30_000, 'calls after the reload');
      const { calls, failures } = await loop.stop();

      expect(failures).toEqual([]);
      expect(calls).toBeGreaterThanOrEqual(8);
      // The same entry and process: nothing was restarted.
      expect(conflux.upstreams.get('files')).toBe(entry);
      expect(await pidOf(session.client, 'files__pid')).toBe(pid);
      expect(entry.status()).toMatchObject({ pid, state: 'ready', description: 'Files of the team', tags: ['team'] });
      const after = conflux.catalog.current.tools.map((t) => t.name);
      // The denied tool is gone, and the new tag has its broadcast tool.
      expect(after.sort()).toEqual([...before.filter((name) => name !== 'files__add'), 'broadcast__by_tag__team'].sort());
      const denied = await session.client.callTool({ name: 'files__add', arguments: { a: 1, b: 2 } }).catch((error: Error) => ({ isError: true, content: [{ type: 'text', text: error.message }] }));
      expect(denied.isError).toBe(true);

      const [line] = about('config reload (file changed) applied');
      expect(line?.msg).toBe('config reload (file changed) applied: servers updated in place: files');
      expect(line).toMatchObject({ result: 'applied', updated: ['files'], reconnected: [], added: [], removed: [] });
      expect(await reloads(conflux, 'applied')).toBe(1);
    } finally {
      await session.close();
      await conflux.stop();
    }
  });

  it('switches a server whose env changed to its new process once that one is ready: no call fails, the call in flight finishes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-reload-'));
    const path = join(dir, 'mcp-servers.yaml');
    await writeFile(path, configText({ files: { ...stdioFixture('files'), env: { GENERATION: 'one' } } }));
    const { logger, about } = capturedLogger();
    const { conflux, url } = await startWatched(path, logger);
    const session = await connectClient(url);
    const other = await connectClient(url);
    try {
      const oldPid = await pidOf(session.client, 'files__pid');
      const loop = callLoop(session.client, 'files__echo', { text: 'hi' });
      await waitFor(() => loop.calls() >= 3, 30_000, 'calls before the edit');
      // A call in flight on the old process while the new one starts: it is answered, not cut.
      const inFlight = other.client.callTool({ name: 'files__sleep', arguments: { ms: 4000 } });
      await replaceFile(path, configText({ files: { ...stdioFixture('files'), env: { GENERATION: 'two' } } }));
      await waitFor(() => {
        const status = conflux.upstreams.get('files')?.status();
        return status?.pid !== undefined && status.pid !== oldPid && status.state === 'ready';
      }, 60_000, 'the switch to the new process');
      const atSwitch = loop.calls();
      await waitFor(() => loop.calls() >= atSwitch + 5, 30_000, 'calls after the switch');
      const { failures } = await loop.stop();

      expect(failures).toEqual([]);
      expect(textOf(await inFlight)).toBe('files slept 4000');
      const newPid = await pidOf(session.client, 'files__pid');
      expect(newPid).not.toBe(oldPid);
      expect(conflux.upstreams.get('files')!.status().pid).toBe(newPid);
      await waitFor(() => !isAlive(oldPid), 30_000, 'the old process to exit');
      expect(about('config reload (file changed) applied')[0]).toMatchObject({ msg: 'config reload (file changed) applied: servers reconnected: files', reconnected: ['files'] });
    } finally {
      await Promise.all([session.close(), other.close()]);
      await conflux.stop();
    }
  });

  it('notices a ConfigMap update: the ..data symlink swapped under a file that is itself a symlink', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-configmap-'));
    const writeVersion = async (version: string, servers: Record<string, unknown>) => {
      await mkdir(join(dir, version));
      await writeFile(join(dir, version, 'mcp-servers.yaml'), configText(servers));
    };
    // As the kubelet lays a ConfigMap volume out.
    await writeVersion('..2026_01_01_00_00_00.1', { files: stdioFixture('files') });
    await symlink('..2026_01_01_00_00_00.1', join(dir, '..data'));
    await symlink('..data/mcp-servers.yaml', join(dir, 'mcp-servers.yaml'));
    const { logger } = capturedLogger();
    const { conflux } = await startWatched(join(dir, 'mcp-servers.yaml'), logger);
    try {
      expect(conflux.upstreams.get('files')?.state).toBe('ready');
      // The kubelet's update: a new folder, a new link renamed over `..data`, the old folder removed.
      await writeVersion('..2026_01_01_00_05_00.2', { files: { ...stdioFixture('files'), description: 'from the ConfigMap' } });
      await symlink('..2026_01_01_00_05_00.2', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });

      await waitFor(() => conflux.upstreams.get('files')?.config.description === 'from the ConfigMap', 30_000, 'the ConfigMap update');
      expect(await reloads(conflux, 'applied')).toBe(1);
    } finally {
      await conflux.stop();
    }
  });

  it('counts each reload by result and keeps the running config when an edit is invalid, saying where', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-reload-'));
    const path = join(dir, 'mcp-servers.yaml');
    await writeFile(path, configText({ files: stdioFixture('files') }));
    const { logger, about } = capturedLogger();
    const { conflux } = await startWatched(path, logger);
    try {
      expect(await conflux.reloadConfig('test')).toBe('unchanged');
      expect(about('config reload (test)')[0]).toMatchObject({ msg: 'config reload (test): no server changed', result: 'unchanged' });

      await replaceFile(path, `servers:\n  files:\n    command: node\n    colour: red\n`);
      await waitFor(async () => (await reloads(conflux, 'rejected')) === 1, 30_000, 'the rejected edit');
      const [rejected] = about('config reload (file changed) rejected');
      expect(rejected?.problems).toEqual([expect.stringMatching(/mcp-servers\.yaml:4:5: servers\.files: unknown key "colour"/)]);
      expect(rejected?.msg).toContain('mcp-servers.yaml:4:5');
      expect(conflux.upstreams.get('files')?.state).toBe('ready');

      await replaceFile(path, configText({ files: stdioFixture('files'), more: stdioFixture('more') }, { ...GATEWAY, pageSize: 50 }));
      await waitFor(async () => (await reloads(conflux, 'applied')) === 1, 30_000, 'the applied edit');
      await waitFor(() => conflux.upstreams.get('more')?.state === 'ready', 30_000, 'the added server');
      const [applied] = about('config reload (file changed) applied');
      expect(applied).toMatchObject({ added: ['more'], restartNeeded: ['gateway.pageSize'], level: 40 });
      expect(applied?.msg).toBe('config reload (file changed) applied: servers added: more; gateway.pageSize changed and takes effect at the next restart');

      expect(await conflux.reloadConfig('test')).toBe('unchanged');
      expect({ applied: await reloads(conflux, 'applied'), rejected: await reloads(conflux, 'rejected'), unchanged: await reloads(conflux, 'unchanged') }).toEqual({ applied: 1, rejected: 1, unchanged: 2 });
      const scraped = await conflux.metrics.registry.metrics();
      expect(scraped).toContain('conflux_config_reloads_total{result="applied"} 1');
      expect(scraped).toContain('conflux_config_reloads_total{result="rejected"} 1');
    } finally {
      await conflux.stop();
    }
  });

  it('SIGHUP makes `conflux serve` reload its config, and the process lives on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-sighup-'));
    const path = join(dir, 'mcp-servers.yaml');
    await writeFile(path, configText({ one: stdioFixture('one') }, {}));
    const gateway = await startGatewayProcess({ config: path });
    let session: Awaited<ReturnType<typeof connectClient>> | undefined;
    try {
      const count = (text: string) => gateway.log().split('\n').filter((line) => line.includes(text)).length;
      // Nothing changed: the reload says so.
      process.kill(gateway.pid, 'SIGHUP');
      await waitFor(() => count('"msg":"config reload (SIGHUP): no server changed"') === 1, 30_000, 'the reload of an unchanged file');
      expect(count('"msg":"reload (SIGHUP)"')).toBe(1);
      expect(isAlive(gateway.pid)).toBe(true);

      // An edit, then SIGHUP: the new server is served (the watch may have applied it first;
      // the SIGHUP reload is logged either way).
      await replaceFile(path, configText({ one: stdioFixture('one'), two: stdioFixture('two') }, {}));
      process.kill(gateway.pid, 'SIGHUP');
      await waitFor(() => count('"msg":"reload (SIGHUP)"') === 2 && count('"msg":"config reload (SIGHUP)') === 2, 30_000, 'the second SIGHUP reload');
      session = await connectClient(gateway.url);
      const client = session.client;
      await waitFor(async () => (await client.listTools()).tools.some((t) => t.name === 'two__echo'), 60_000, 'the added server');
      expect(textOf(await client.callTool({ name: 'two__echo', arguments: { text: 'hup' } }))).toBe('two: hup');
      expect(isAlive(gateway.pid)).toBe(true);
      const metrics = await (await fetch(`${gateway.base}/metrics`)).text();
      expect(metrics).toMatch(/conflux_config_reloads_total\{result="unchanged"\} [1-9]/);
      expect(metrics).toMatch(/conflux_config_reloads_total\{result="applied"\} 1/);
    } finally {
      await session?.close();
      await gateway.stop();
    }
  });
});

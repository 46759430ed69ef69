import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { openDatabase } from '../../src/store/database.js';
import { startStreamableUpstream } from '../fixtures/http-servers.js';
import { connectClient, testConfig, textOf, waitFor } from '../helpers/gateway.js';

async function started(conflux: Conflux): Promise<string> {
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  return url;
}

describe('runtime registry', () => {
  it('registers a server through the API while a session is open, removes it, and keeps it across restarts', async () => {
    const upstream = await startStreamableUpstream('weather');
    const dataDir = await mkdtemp(join(tmpdir(), 'conflux-pglite-'));
    const open = async () => {
      const database = await openDatabase({ dataDir });
      await database.migrate();
      return database;
    };
    let database = await open();
    let conflux = createConflux(testConfig({}), { logger: silentLogger(), database });
    try {
      const url = await started(conflux);
      const api = url.replace(/\/mcp$/, '/api/v1');
      const session = await connectClient(url);
      expect((await session.client.listTools()).tools.filter((t) => t.name.startsWith('weather__'))).toEqual([]);

      const changed = session.nextToolListChange();
      const created = await fetch(`${api}/servers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'weather', url: upstream.url, tags: ['remote'], headers: { 'X-Key': 'secret-value' } }),
      });
      expect(created.status).toBe(201);
      const view = (await created.json()) as { name: string; source: string; transport: string; definition: { headers: Record<string, string> } };
      expect(view).toMatchObject({ name: 'weather', source: 'api', transport: 'streamable-http' });
      expect(view.definition.headers).toEqual({ 'X-Key': '[redacted]' });
      await changed;
      expect(textOf(await session.client.callTool({ name: 'weather__echo', arguments: { text: 'sunny' } }))).toBe('weather: sunny');

      const duplicate = await fetch(`${api}/servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'weather', url: upstream.url }) });
      expect(duplicate.status).toBe(409);
      expect(await duplicate.json()).toMatchObject({ error: { code: 'conflict' } });

      // restart: a new gateway on the same database finds the server again
      await session.close();
      await conflux.stop();
      await database.close();
      database = await open();
      conflux = createConflux(testConfig({}), { logger: silentLogger(), database });
      const url2 = await started(conflux);
      await waitFor(() => conflux.upstreams.get('weather')?.state === 'ready', 10_000, 'the stored server to connect');
      const again = await connectClient(url2);
      expect(textOf(await again.client.callTool({ name: 'weather__echo', arguments: { text: 'again' } }))).toBe('weather: again');

      const gone = again.nextToolListChange();
      const deleted = await fetch(`${url2.replace(/\/mcp$/, '/api/v1')}/servers/weather`, { method: 'DELETE' });
      expect(deleted.status).toBe(204);
      await gone;
      expect((await again.client.listTools()).tools.filter((t) => t.name.startsWith('weather__'))).toEqual([]);
      await again.close();
    } finally {
      await conflux.stop();
      await database.close();
      await upstream.close();
    }
  });

  it('applies an edited config file: one server added, one removed, the others untouched', async () => {
    const keep = await startStreamableUpstream('keep');
    const drop = await startStreamableUpstream('drop');
    const add = await startStreamableUpstream('add');
    const dir = await mkdtemp(join(tmpdir(), 'conflux-reload-'));
    const path = join(dir, 'mcp-servers.yaml');
    const yaml = (servers: Record<string, string>) =>
      `gateway: { port: 0, reconnect: { initialDelayMs: 100, maxDelayMs: 500 } }\nservers:\n${Object.entries(servers)
        .map(([name, url]) => `  ${name}: { url: "${url}" }\n`)
        .join('')}`;
    await writeFile(path, yaml({ keep: keep.url, drop: drop.url }));
    const conflux = createConflux(await loadConfigFile(path, {}), { logger: silentLogger(), configFile: { path, env: {} } });
    try {
      const url = await started(conflux);
      await waitFor(() => conflux.upstreams.get('keep')?.state === 'ready' && conflux.upstreams.get('drop')?.state === 'ready', 10_000, 'upstreams');
      const session = await connectClient(url);
      expect(keep.sessionsOpened).toBe(1);

      const changed = session.nextToolListChange();
      await writeFile(path, yaml({ keep: keep.url, add: add.url }));
      await waitFor(() => conflux.upstreams.get('add')?.state === 'ready' && !conflux.upstreams.get('drop'), 10_000, 'the reload');
      await changed;
      const names = (await session.client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('add__echo');
      expect(names.some((n) => n.startsWith('drop__'))).toBe(false);
      expect(keep.sessionsOpened).toBe(1); // the same upstream session: not reconnected
      expect(textOf(await session.client.callTool({ name: 'keep__echo', arguments: { text: 'still' } }))).toBe('keep: still');

      // an invalid edit is rejected and the running servers stay
      await writeFile(path, 'servers:\n  broken: { url: "not a url" }\n');
      await new Promise((r) => setTimeout(r, 600));
      expect(conflux.upstreams.get('keep')?.state).toBe('ready');
      expect(conflux.upstreams.get('add')?.state).toBe('ready');
      expect(conflux.upstreams.get('broken')).toBeUndefined();
      await session.close();
    } finally {
      await conflux.stop();
      await Promise.all([keep.close(), drop.close(), add.close()]);
    }
  });
});

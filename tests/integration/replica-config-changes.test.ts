import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessControl } from '../../src/auth/access-control.js';
import { ApiKeys } from '../../src/auth/api-keys.js';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { RegistryError } from '../../src/registry/errors.js';
import { ServerRegistry } from '../../src/registry/server-registry.js';
import { ConfigChanges } from '../../src/state/config-changes.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { SharedStateUnavailableError, type ReplicaBus, type ReplicaMessage } from '../../src/state/shared-state.js';
import { AccessRepository } from '../../src/store/access-repository.js';
import { ApiKeyRepository } from '../../src/store/api-key-repository.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { ServerRepository } from '../../src/store/server-repository.js';
import { initializeRequest, openStream } from '../helpers/auth.js';
import { freshPglite, freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { connectClient, isAlive, stdioFixture, testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { testPool } from '../helpers/upstream-pool.js';

const hasPostgres = await postgresAvailable();

/** Well under the access rules' refresh (3600 s here): only an announcement can make a change land within it. */
const PROMPTLY_MS = 10_000;

interface Replica {
  conflux: Conflux;
  url: string;
  api: string;
}

/** A session of the real SDK client with an API key, telling each `tools/list_changed`. */
const keyedSession = (url: string, key: string) => connectClient(url, 'replica-test', { 'x-api-key': key });

/** The process id the stdio fixture reports through `<prefix>__pid`, or undefined while it cannot answer. */
async function pidThrough(client: Client, tool: string): Promise<number | undefined> {
  try {
    const result = await client.callTool({ name: tool, arguments: {} });
    return result.isError ? undefined : Number(textOf(result));
  } catch {
    return undefined;
  }
}

describe.skipIf(!hasPostgres)('configuration changes made through one replica reach the others (one PostgreSQL, one hub)', () => {
  let store: TestDatabase;
  const databases: OpenedDatabase[] = [];
  const replicas: Replica[] = [];
  let a: Replica;
  let b: Replica;
  let adminKey: string;
  /** Every message on the hub, as a third replica hears it. */
  const heard: { message: ReplicaMessage; from: string }[] = [];
  let stopListening: () => void = () => {};

  const configChanges = (from: Replica) => heard.filter((h) => h.from === from.conflux.state.replicaId && h.message.kind === 'config-changed').map((h) => h.message);
  const asAdmin = (init: RequestInit = {}): RequestInit => ({
    ...init,
    headers: { 'content-type': 'application/json', 'x-api-key': adminKey, ...(init.headers as Record<string, string> | undefined) },
  });

  beforeAll(async () => {
    store = await freshPostgres();
    const hub = new MemoryHub();
    stopListening = hub.busFor('observer').onMessage((message, from) => heard.push({ message, from }));
    const config: Config = testConfig(
      { steady: stdioFixture('steady') },
      { auth: { apiKeys: true }, access: { defaultLevel: 'none', refreshSeconds: 3600 }, api: { allowStdio: true } },
    );
    for (let i = 0; i < 2; i++) {
      const database = await store.open();
      databases.push(database);
      if (i === 0) await database.migrate();
      const conflux = createConflux(config, { logger: silentLogger(), database, state: new MemorySharedState(hub) });
      await conflux.start();
      const { url } = await conflux.listen('127.0.0.1', 0);
      replicas.push({ conflux, url, api: url.replace(/\/mcp$/, '/api/v1') });
    }
    [a, b] = replicas as [Replica, Replica];
    adminKey = (await a.conflux.apiKeys!.create({ name: 'admin', groups: ['MCP-Admin'] })).key;
  }, 60_000);

  afterAll(async () => {
    stopListening();
    for (const replica of replicas) await replica.conflux.stop();
    for (const database of databases) await database.close();
    await store?.dispose();
  });

  it('a server registered on A is listed and callable on B, restarted on both, and deleted from both (its process on B stopped)', async () => {
    const session = await keyedSession(b.url, adminKey);
    try {
      expect((await session.client.listTools()).tools.map((t) => t.name)).not.toContain('ident__pid');
      const listed = session.nextToolListChange();
      const created = await fetch(`${a.api}/servers`, asAdmin({ method: 'POST', body: JSON.stringify({ name: 'ident', ...stdioFixture('ident') }) }));
      expect(created.status).toBe(201);
      await listed;
      await waitFor(() => b.conflux.upstreams.get('ident')?.state === 'ready', PROMPTLY_MS, 'the server on B');
      expect((await session.client.listTools()).tools.map((t) => t.name)).toContain('ident__pid');
      expect(await (await fetch(`${b.api}/servers/ident`, asAdmin())).json()).toMatchObject({ name: 'ident', source: 'api', transport: 'stdio' });
      const firstPid = (await pidThrough(session.client, 'ident__pid'))!;
      expect(isAlive(firstPid)).toBe(true);
      // Reading the stored servers again (as the periodic re-read does) leaves an unchanged one connected.
      await Promise.all([a.conflux.registry.reloadStored(), b.conflux.registry.reloadStored()]);
      expect(await pidThrough(session.client, 'ident__pid')).toBe(firstPid);

      // One restart request, every replica's process restarted.
      expect((await fetch(`${a.api}/servers/ident/restart`, asAdmin({ method: 'POST' }))).status).toBe(202);
      let restartedPid: number | undefined;
      await waitFor(
        async () => {
          restartedPid = await pidThrough(session.client, 'ident__pid');
          return restartedPid !== undefined && restartedPid !== firstPid;
        },
        PROMPTLY_MS,
        'the process on B to be restarted',
      );
      await waitFor(() => !isAlive(firstPid), PROMPTLY_MS, 'the first process on B to exit');

      const gone = session.nextToolListChange();
      expect((await fetch(`${a.api}/servers/ident`, asAdmin({ method: 'DELETE' }))).status).toBe(204);
      await gone;
      await waitFor(() => !isAlive(restartedPid!), PROMPTLY_MS, 'the process on B to be stopped');
      expect(b.conflux.upstreams.get('ident')).toBeUndefined();
      expect((await session.client.listTools()).tools.map((t) => t.name)).not.toContain('ident__pid');
      expect((await fetch(`${b.api}/servers/ident`, asAdmin())).status).toBe(404);

      expect(configChanges(a)).toEqual(
        expect.arrayContaining([
          { kind: 'config-changed', what: 'servers', detail: 'ident' },
          { kind: 'config-changed', what: 'servers', detail: 'restart:ident' },
        ]),
      );
      expect(configChanges(a).filter((m) => m.kind === 'config-changed' && m.what === 'servers')).toHaveLength(3);
      expect(configChanges(b)).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('a grant removed on A refuses the call on B at once, not at the next refresh', async () => {
    const created = await fetch(`${a.api}/api-keys`, asAdmin({ method: 'POST', body: JSON.stringify({ name: 'bot', subject: 'bot' }) }));
    expect(created.status).toBe(201);
    const botKey = ((await created.json()) as { key: string }).key;
    const granted = await fetch(`${a.api}/access/grants`, asAdmin({ method: 'POST', body: JSON.stringify({ user: 'bot', server: 'steady', level: 'call' }) }));
    expect(granted.status).toBe(201);
    const grantId = ((await granted.json()) as { id: string }).id;
    await waitFor(() => b.conflux.upstreams.get('steady')?.state === 'ready', PROMPTLY_MS, 'the config server on B');

    const bot = await keyedSession(b.url, botKey);
    try {
      await waitFor(async () => (await pidThrough(bot.client, 'steady__pid')) !== undefined, PROMPTLY_MS, 'the grant to reach B');
      expect((await fetch(`${a.api}/access/grants/${grantId}`, asAdmin({ method: 'DELETE' }))).status).toBe(204);
      await waitFor(async () => (await pidThrough(bot.client, 'steady__pid')) === undefined, PROMPTLY_MS, 'the removal to reach B');
      const refused = await bot.client.callTool({ name: 'steady__echo', arguments: { text: 'hi' } }).catch((error: unknown) => error);
      // Without a grant the server is invisible to the caller: its tools are unknown.
      expect(refused).toMatchObject({ code: -32602, message: expect.stringContaining('Unknown tool: "steady__echo"') });
      expect((await bot.client.listTools()).tools.map((t) => t.name).filter((n) => n.startsWith('steady__'))).toEqual([]);
      expect(configChanges(a).filter((m) => m.kind === 'config-changed' && m.what === 'access')).toHaveLength(2);
      expect(configChanges(b)).toEqual([]);
    } finally {
      await bot.close();
    }
  });

  it('an API key revoked on A is refused on B, and the stream it opened on B ends', async () => {
    const created = await fetch(`${a.api}/api-keys`, asAdmin({ method: 'POST', body: JSON.stringify({ name: 'streamer', subject: 'streamer' }) }));
    const { key, id } = (await created.json()) as { key: string; id: string };
    const stream = await openStream(b.url, { 'x-api-key': key });
    try {
      expect((await fetch(`${a.api}/api-keys/${id}`, asAdmin({ method: 'DELETE' }))).status).toBe(200);
      expect(await stream.ended).toBe('ended');
      await waitFor(async () => (await initializeRequest(b.url, { 'x-api-key': key })).status === 401, PROMPTLY_MS, 'B to refuse the key');
      expect(configChanges(a)).toEqual(expect.arrayContaining([{ kind: 'config-changed', what: 'api-keys', detail: id }]));
      expect(JSON.stringify(heard)).not.toContain(key); // ids only, never a key
      expect(configChanges(b)).toEqual([]);
    } finally {
      await stream.cancel();
    }
  });
});

describe('a replica applying a change it heard of', () => {
  it('reads what changed from the database and announces nothing; its own changes it announces once', async () => {
    const database = await freshPglite().open();
    const hub = new MemoryHub();
    const replica = new MemorySharedState(hub);
    const other = hub.busFor('other');
    const heard: { message: ReplicaMessage; from: string }[] = [];
    const stopHearing = other.onMessage((message, from) => heard.push({ message, from }));
    const logger = silentLogger();
    const accessControl = new AccessControl({ adminGroup: 'MCP-Admin', defaultLevel: 'none', grants: [], toolRules: [], refreshSeconds: 3600 }, new AccessRepository(database.db), logger);
    const apiKeys = new ApiKeys(new ApiKeyRepository(database.db));
    const pool = testPool({ logger });
    const registry = new ServerRegistry({ upstreams: pool, repository: new ServerRepository(database.db), logger, allowStdio: false });
    const changes = new ConfigChanges({ bus: replica.bus, replicaId: replica.replicaId, accessControl, apiKeys, registry, logger });
    const revoked: string[] = [];
    apiKeys.onRevoked((id) => revoked.push(id));
    try {
      await accessControl.start();
      await registry.start({});
      changes.start();

      // Another replica stored a server, a grant and a revocation, and says so.
      await new ServerRepository(database.db).insert('elsewhere', { url: 'http://127.0.0.1:9/mcp', enabled: false });
      await other.broadcast({ kind: 'config-changed', what: 'servers', detail: 'elsewhere' });
      await waitFor(() => registry.definition('elsewhere') !== undefined, 5000, 'the stored server to be read');
      expect(registry.sourceOf('elsewhere')).toBe('api');

      await new AccessRepository(database.db).addGrant({ subjectType: 'user', subject: 'ann', server: '*', level: 'call' });
      await other.broadcast({ kind: 'config-changed', what: 'access' });
      await waitFor(() => accessControl.rules().grants.length === 1, 5000, 'the grant to be read');

      const key = await apiKeys.create({ name: 'elsewhere' });
      heard.length = 0; // the creation above was this replica's own change
      await new ApiKeyRepository(database.db).revoke(key.record.id);
      await other.broadcast({ kind: 'config-changed', what: 'api-keys', detail: key.record.id });
      await waitFor(() => revoked.includes(key.record.id), 5000, 'the revocation to be announced here');
      expect(await apiKeys.verify(key.key)).toEqual({ refused: 'API key revoked' });

      // Nothing was announced back: once the registry's queue is through (a re-read joins its
      // end) and the bus's deliveries are flushed, anything announced would have been heard.
      await registry.reloadStored();
      await new Promise((r) => setImmediate(r));
      expect(heard).toEqual([]);

      // A change made here is announced once, with its name.
      await registry.patch('elsewhere', { description: 'changed here' });
      await accessControl.removeGrant(String(accessControl.rules().grants[0]!.id));
      await new Promise((r) => setImmediate(r));
      expect(heard.map((h) => h.message)).toEqual([
        { kind: 'config-changed', what: 'servers', detail: 'elsewhere' },
        { kind: 'config-changed', what: 'access' },
      ]);
      expect(heard.every((h) => h.from === replica.replicaId)).toBe(true);
    } finally {
      changes.stop();
      stopHearing();
      await registry.close();
      await pool.stop();
      accessControl.stop();
      await database.close();
    }
  });

  it('a change to a server another replica deleted meanwhile is refused as unknown, and does not bring it back', async () => {
    const database = await freshPglite().open();
    const logger = silentLogger();
    const pool = testPool({ logger });
    const repository = new ServerRepository(database.db);
    const registry = new ServerRegistry({ upstreams: pool, repository, logger, allowStdio: false });
    const announced: string[] = [];
    registry.onChanged((change) => announced.push(change.server));
    try {
      await repository.insert('patched', { url: 'http://127.0.0.1:9/mcp', enabled: false });
      await repository.insert('replaced', { url: 'http://127.0.0.1:9/mcp', enabled: false });
      await registry.start({});
      expect(pool.get('patched')).toBeDefined();
      // Another replica deletes both; its announcement has not arrived here yet.
      await new ServerRepository(database.db).delete('patched');
      await new ServerRepository(database.db).delete('replaced');

      const patched = await registry.patch('patched', { description: 'changed here' }).catch((error: unknown) => error);
      expect(patched).toBeInstanceOf(RegistryError);
      expect(patched).toMatchObject({ status: 404, code: 'not_found', message: 'no server named "patched"' });
      const replaced = await registry.replace('replaced', { url: 'http://127.0.0.1:9/other', enabled: false }).catch((error: unknown) => error);
      expect(replaced).toMatchObject({ status: 404, code: 'not_found', message: 'no server named "replaced"' });

      // Gone here too, as the announcement would have made it, and not stored again.
      for (const name of ['patched', 'replaced']) {
        expect(registry.sourceOf(name)).toBeUndefined();
        expect(pool.get(name)).toBeUndefined();
      }
      expect(await repository.list()).toEqual([]);
      await registry.reloadStored();
      expect(registry.all()).toEqual({});
      expect(announced).toEqual([]);
    } finally {
      await registry.close();
      await pool.stop();
      await database.close();
    }
  });

  it('a bus that does not answer fails no change: it is stored, and the failure is logged once per streak', async () => {
    const database = await freshPglite().open();
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
    const accessControl = new AccessControl({ adminGroup: 'MCP-Admin', defaultLevel: 'none', grants: [], toolRules: [], refreshSeconds: 3600 }, new AccessRepository(database.db), logger);
    let attempts = 0;
    // A bus whose backend is down, as the Redis one rejects when Redis does not answer.
    const bus: ReplicaBus = {
      send: async () => {},
      broadcast: async () => {
        attempts++;
        throw new SharedStateUnavailableError('the shared state did not answer in time');
      },
      onMessage: () => () => {},
    };
    const changes = new ConfigChanges({ bus, replicaId: 'here', accessControl, logger });
    try {
      await accessControl.start();
      changes.start();
      await accessControl.addGrant({ subjectType: 'user', subject: 'ann', server: '*', level: 'call' });
      await accessControl.addGrant({ subjectType: 'user', subject: 'bob', server: '*', level: 'read' });
      await waitFor(() => attempts === 2, 5000, 'both announcements to be tried');
      await new Promise((r) => setImmediate(r));
      expect(accessControl.rules().grants.map((g) => g.subject)).toEqual(['ann', 'bob']);
      expect(warnings.filter((w) => w.includes('other replicas'))).toHaveLength(1);
    } finally {
      changes.stop();
      accessControl.stop();
      await database.close();
    }
  });
});

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { describe, expect, it } from 'vitest';
import { PerUserServer } from '../../src/upstream/per-user-server.js';
import { startStreamableUpstream } from '../fixtures/http-servers.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { CallLoops, eachAnswered, eachAnsweredMore, type CallLoop } from '../helpers/call-loop.js';
import { connectClient, isAlive, ROOT, sdkClient, startGateway, stdioFixture, testConfig, textOf, waitFor, type ConnectedClient, type RunningGateway } from '../helpers/gateway.js';
import { lifetimes, MARKED_FIXTURE, runsSolo, soloEntry, soloServerConfig, untilRunsOn, withSoloPair, type SoloPair } from '../helpers/single-owner.js';
import { testPool } from '../helpers/upstream-pool.js';
import { nodeArgs } from '../helpers/built-entries.js';

/**
 * A server whose connection settings change while calls stream in: each kind of entry moves to
 * the new definition without a call answered "Unknown tool" or failed, the calls in flight on
 * the old process answered by it; and the switch holds up no other change of the registry.
 */
const GENERATION_FIXTURE = resolve(ROOT, 'tests/fixtures/generation-stdio-server.ts');

interface Answer {
  pid: number;
  who: string;
  generation: string;
}

const parsed = (text: string): Answer => JSON.parse(text) as Answer;

/** A call's answer text, or its failure's (kept, so that a test reads it when it gets to it). */
function answerOf(call: Promise<object>): Promise<string> {
  return call.then(
    (result) => textOf(result),
    (error: Error) => `failed: ${error.message}`,
  );
}

function perUserServer(generation: string): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: nodeArgs(GENERATION_FIXTURE), cwd: ROOT, shared: false, env: { WHO: '${user.sub}', GENERATION: generation } };
}

function perUserConfig(generation: string, servers: Record<string, unknown> = { ident: perUserServer(generation) }) {
  return testConfig(
    servers,
    { auth: { jwt: { secret: JWT_SECRET } }, access: { defaultLevel: 'call' }, upstreamIdentity: { instances: { idleSeconds: 0, maxPerUser: 5, maxTotal: 20 } } },
  );
}

async function userSession(gateway: RunningGateway, sub: string) {
  const token = await hs256Token({ sub, email: `${sub}@example.com` }, { expiresIn: '10m' });
  return sdkClient(gateway.url, { headers: bearer(token), name: sub });
}

async function whoami(client: Client): Promise<Answer> {
  const result = await client.callTool({ name: 'ident__whoami', arguments: {} });
  expect(result.isError, textOf(result)).toBeFalsy();
  return parsed(textOf(result));
}

describe('a per-user server whose definition changes', () => {
  it("keeps its tools listed and every call answered, each user's on their own instance, and moves each user to an instance of the new definition", async () => {
    const gateway = await startGateway(perUserConfig('one'));
    const sessions = await Promise.all(['alice', 'bob', 'carol'].map((sub) => userSession(gateway, sub)));
    const [alice, bob, carol] = sessions as [(typeof sessions)[0], (typeof sessions)[0], (typeof sessions)[0]];
    const calling = new CallLoops();
    try {
      const template = gateway.conflux.upstreams.get('ident')!.status().pid!;
      const before = { alice: await whoami(alice.client), bob: await whoami(bob.client), carol: await whoami(carol.client) };
      expect(Object.values(before).map((a) => a.generation)).toEqual(['one', 'one', 'one']);

      const loops = { alice: calling.start(alice.client, 'ident__whoami'), bob: calling.start(bob.client, 'ident__whoami') };
      await eachAnswered([loops.alice, loops.bob], 3, 'calls before the change');
      // On Alice's instance of the old definition while the new one comes up: answered there, not cut.
      const inFlight = answerOf(alice.client.callTool({ name: 'ident__sleep', arguments: { ms: 3000 } }));
      await gateway.conflux.registry.setConfigServers(perUserConfig('two').servers);
      const onTwo = (answers: readonly string[]) => answers.length > 0 && parsed(answers.at(-1)!).generation === 'two';
      await waitFor(() => onTwo(loops.alice.answers) && onTwo(loops.bob.answers), 60_000, 'both users to reach an instance of the new definition');
      await eachAnsweredMore([loops.alice, loops.bob], 5, 'calls after the switch');
      await Promise.all([loops.alice.stop(), loops.bob.stop()]);

      expect(loops.alice.failures).toEqual([]);
      expect(loops.bob.failures).toEqual([]);
      const answered = { alice: loops.alice.answers.map(parsed), bob: loops.bob.answers.map(parsed) };
      // Strict isolation throughout: each answer came from the caller's own instance.
      expect(new Set(answered.alice.map((a) => a.who))).toEqual(new Set(['alice']));
      expect(new Set(answered.bob.map((a) => a.who))).toEqual(new Set(['bob']));
      const pidsOf = (answers: Answer[]) => new Set(answers.map((a) => a.pid));
      expect([...pidsOf(answered.alice)].filter((pid) => pidsOf(answered.bob).has(pid))).toEqual([]);
      // Once on the new definition, never back on the old.
      for (const answers of [answered.alice, answered.bob]) {
        const first = answers.findIndex((a) => a.generation === 'two');
        expect(answers.slice(first).every((a) => a.generation === 'two')).toBe(true);
      }
      expect(await inFlight).toBe(JSON.stringify(before.alice));

      // The old instances and template are gone: Carol's, idle all along, at once; the others once their calls ended.
      await waitFor(() => [template, before.alice.pid, before.bob.pid, before.carol.pid].every((pid) => !isAlive(pid)), 30_000, 'the old processes to exit');
      const carolNow = await whoami(carol.client);
      expect(carolNow).toMatchObject({ who: 'carol', generation: 'two' });
      expect(carolNow.pid).not.toBe(before.carol.pid);
      expect(gateway.conflux.upstreams.instances().map((i) => i.user).sort()).toEqual(['alice@example.com', 'bob@example.com', 'carol@example.com']);
      expect((await alice.client.listTools()).tools.map((t) => t.name)).toContain('ident__whoami');
    } finally {
      await calling.stopAll();
      await Promise.all(sessions.map((s) => s.close()));
      await gateway.stop();
    }
  });
});

describe('a per-user HTTP server whose definition changes', () => {
  it('keeps listing what the old definition listed until an instance of the new one lists, and every call is answered', async () => {
    const upstream = await startStreamableUpstream('remote');
    const remote = (url: string) => ({ remote: { url, shared: false, headers: { authorization: 'Bearer ${user.token}' } } });
    const gateway = await startGateway(perUserConfig('', remote(upstream.url)));
    const sessions = await Promise.all(['alice', 'bob'].map((sub) => userSession(gateway, sub)));
    const calling = new CallLoops();
    try {
      await waitFor(() => gateway.conflux.upstreams.get('remote')!.tools.length > 0, 30_000, 'a user instance to list the server');
      const loops = sessions.map((session, i) => calling.start(session.client, 'remote__echo', { text: `from user ${i}` }));
      await eachAnswered(loops, 3, 'calls before the change');
      const opened = upstream.sessionsOpened;

      // Another URL (the same server): each user's next call starts an instance of the new definition.
      await gateway.conflux.registry.setConfigServers(perUserConfig('', remote(`${upstream.url}?generation=two`)).servers);
      await waitFor(() => (gateway.conflux.upstreams.get('remote')!.config as { url?: string }).url === `${upstream.url}?generation=two`, 30_000, 'the switch to the new definition');
      const entry = gateway.conflux.upstreams.get('remote');
      expect(entry).toBeInstanceOf(PerUserServer);
      expect(entry!.tools.map((t) => t.name)).toContain('echo');
      await waitFor(() => upstream.sessionsOpened >= opened + 2, 30_000, 'an instance of the new definition for each user');
      await eachAnsweredMore(loops, 5, 'calls after the switch');
      await Promise.all(loops.map((l) => l.stop()));

      expect(loops.map((l) => l.failures)).toEqual([[], []]);
      expect(loops.map((l) => new Set(l.answers))).toEqual([new Set(['remote: from user 0']), new Set(['remote: from user 1'])]);
      expect(gateway.conflux.upstreams.instances().map((i) => i.user).sort()).toEqual(['alice@example.com', 'bob@example.com']);
    } finally {
      await calling.stopAll();
      await Promise.all(sessions.map((s) => s.close()));
      await gateway.stop();
      await upstream.close();
    }
  });
});

function soloConfig(markFile: string, generation: string, processes: 'one' | 'per_worker' = 'one') {
  return soloServerConfig({ args: [...nodeArgs(MARKED_FIXTURE), 'solo'], env: { MARK_FILE: markFile, SLOW_EXIT_MS: '1000', GENERATION: generation }, processes });
}

/** Runs `test` against two gateways that share one hub, both given `solo` at generation `one` (its processes marked in a file of their own). */
function withTwoGateways(test: (pair: SoloPair) => Promise<void>): Promise<void> {
  return withSoloPair({ prefix: 'conflux-gapless-', config: ({ markFile }) => soloConfig(markFile, 'one') }, test);
}

/** Calls of `solo__pid` streaming through each client and, once each is answered, a call of `solo__sleep` in flight on each. */
async function callsUnderway(calling: CallLoops, clients: readonly ConnectedClient[], sleepMs: number, what: string) {
  const loops = clients.map((c) => calling.start(c.client, 'solo__pid'));
  await eachAnswered(loops, 3, what);
  const inFlight = clients.map((c) => answerOf(c.client.callTool({ name: 'solo__sleep', arguments: { ms: sleepMs } })));
  return { loops, inFlight };
}

/** Waits until each loop's latest answer (a pid) names a process other than `oldPid`. */
function eachOffProcess(loops: readonly CallLoop[], oldPid: number, what: string): Promise<void> {
  return waitFor(() => loops.every((l) => l.answers.length > 0 && Number(l.answers.at(-1)) !== oldPid), 60_000, what);
}

describe('a processes: one server whose definition changes', () => {
  it('keeps answering every call through both gateways, the call in flight on the old process included, and never runs two processes', () =>
    withTwoGateways(async ({ markFile, hub, first, second, gateways, calling, connectEach }) => {
      await untilRunsOn(first, second, 'the first gateway to run the server', { listed: true });
      const clients = await connectEach();
      const oldPid = soloEntry(first).status().pid!;

      const { loops, inFlight } = await callsUnderway(calling, clients, 2000, 'calls before the change');
      await Promise.all(gateways.map((g) => g.conflux.registry.setConfigServers(soloConfig(markFile, 'two').servers)));
      await eachOffProcess(loops, oldPid, 'calls to reach the new process through both gateways');
      await eachAnsweredMore(loops, 5, 'calls after the switch');
      await Promise.all(loops.map((l) => l.stop()));

      expect(loops.map((l) => l.failures)).toEqual([[], []]);
      expect(await Promise.all(inFlight)).toEqual(['solo slept 2000', 'solo slept 2000']);
      const newPid = soloEntry(first).status().pid;
      expect(new Set(loops.flatMap((l) => l.answers.map(Number)))).toEqual(new Set([oldPid, newPid]));
      // The gateway that ran it kept the lease, and the old process exited before the new one started.
      expect(await hub.leasesFor('onlooker').holder('stdio:solo')).toBe(first.conflux.state.replicaId);
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
    }));
});

describe('a processes: one server changed again, and restarted, while its process is being replaced', () => {
  it('still never runs two processes, and no call fails', () =>
    withTwoGateways(async ({ markFile, first, second, gateways, calling, connectEach }) => {
      await waitFor(() => runsSolo(first) && soloEntry(second).tools.length > 0, 20_000, 'the first gateway to run the server');
      const clients = await connectEach();
      const oldPid = soloEntry(first).status().pid!;
      const { loops, inFlight } = await callsUnderway(calling, clients, 1500, 'calls before the changes');

      // The old process finishes its calls meanwhile: the second change and the restart (heard by the other gateway too) come while it is being replaced.
      await Promise.all(gateways.map((g) => g.conflux.registry.setConfigServers(soloConfig(markFile, 'two').servers)));
      await Promise.all(gateways.map((g) => g.conflux.registry.setConfigServers(soloConfig(markFile, 'three').servers)));
      await first.conflux.registry.restart('solo');
      await eachOffProcess(loops, oldPid, 'calls to reach a new process through both gateways');
      await eachAnsweredMore(loops, 5, 'calls after the changes');
      await Promise.all(loops.map((l) => l.stop()));

      expect(loops.map((l) => l.failures)).toEqual([[], []]);
      expect(await Promise.all(inFlight)).toEqual(['solo slept 1500', 'solo slept 1500']);
      await waitFor(() => lifetimes(markFile).running === 1, 30_000, 'the processes replaced to exit');
      expect(lifetimes(markFile).mostAtOnce).toBe(1);
    }));
});

/** The processes that started, in `markFile`, while the first one to start still ran. */
function startedBesideFirst(markFile: string): string[] {
  const lines = readFileSync(markFile, 'utf8').split('\n').filter(Boolean);
  const first = lines[0]!.slice('start '.length);
  const exited = lines.indexOf(`exit ${first}`);
  return lines.slice(1, exited === -1 ? undefined : exited).filter((line) => line.startsWith('start '));
}

/**
 * A server whose old process cannot run beside its successor (`processes: one` on one side of
 * the change) is changed again while that process is still exiting: the entry of the second
 * change starts only once the process of the first has exited, whatever kind it is.
 */
describe('a server changed twice in a row while the process replaced by the first change is still exiting', () => {
  async function withSolo(first: 'one' | 'per_worker', test: (gateway: RunningGateway, markFile: string) => Promise<void>): Promise<void> {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-gapless-'));
    const markFile = join(folder, 'lifetimes');
    const gateway = await startGateway(soloConfig(markFile, 'one', first));
    try {
      await waitFor(() => gateway.conflux.upstreams.get('solo')?.state === 'ready', 30_000, 'the first process');
      await test(gateway, markFile);
    } finally {
      await gateway.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  }

  it('turned processes: one, then given new settings: never two processes at once', () =>
    withSolo('per_worker', async (gateway, markFile) => {
      const { registry, upstreams } = gateway.conflux;
      await registry.setConfigServers(soloConfig(markFile, 'two').servers);
      await registry.setConfigServers(soloConfig(markFile, 'three').servers);
      await waitFor(() => upstreams.get('solo')?.state === 'ready' && lifetimes(markFile).running === 1, 30_000, 'the latest process, alone');
      expect(startedBesideFirst(markFile)).toEqual([]);
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
    }));

  it('turned processes: one off, then given new settings: nothing starts before the one process has exited', () =>
    withSolo('one', async (gateway, markFile) => {
      const { registry, upstreams } = gateway.conflux;
      await registry.setConfigServers(soloConfig(markFile, 'two', 'per_worker').servers);
      await registry.setConfigServers(soloConfig(markFile, 'three', 'per_worker').servers);
      await waitFor(() => upstreams.get('solo')?.state === 'ready' && lifetimes(markFile).running === 1, 30_000, 'the latest process, alone');
      expect(startedBesideFirst(markFile)).toEqual([]);
      expect(lifetimes(markFile).running).toBe(1);
    }));
});

/** A stdio server that starts, writes its pid to `pidFile`, and never answers `initialize`: a switch to it waits for its connect timeout. */
function silentServer(pidFile: string): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: ['-e', `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 60000)`], connectTimeout: 3600 };
}

/** The pid the silent server wrote to `pidFile`, once it has started. */
async function startedPid(pidFile: string): Promise<number> {
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '', 20_000, 'the new process to start');
  return Number(readFileSync(pidFile, 'utf8'));
}

describe('a switch waiting for its new connection', () => {
  it('holds up no other change of the registry, and a further change to the same server calls it off', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-gapless-'));
    const pidFile = join(folder, 'pid');
    const files = (generation: string) => stdioFixture('files', { env: { GENERATION: generation } });
    const silent = silentServer(pidFile);
    const gateway = await startGateway(testConfig({ files: files('one') }));
    const session = await connectClient(gateway.url);
    const servers = (entries: Record<string, unknown>) => testConfig(entries).servers;
    try {
      const { upstreams, registry } = gateway.conflux;
      const oldPid = upstreams.get('files')!.status().pid!;
      await registry.setConfigServers(servers({ files: silent }));
      const silentPid = await startedPid(pidFile);

      // Another server is added while that switch waits; the old connection serves meanwhile.
      await registry.setConfigServers(servers({ files: silent, other: stdioFixture('other') }));
      await waitFor(() => upstreams.get('other')?.state === 'ready', 20_000, 'the added server');
      expect(textOf(await session.client.callTool({ name: 'files__pid', arguments: {} }))).toBe(String(oldPid));
      expect(isAlive(silentPid)).toBe(true);

      // A further change of the server calls the waiting switch off: its new process is stopped.
      await registry.setConfigServers(servers({ files: files('two'), other: stdioFixture('other') }));
      await waitFor(() => !isAlive(silentPid), 20_000, 'the superseded process to exit');
      await waitFor(() => {
        const status = upstreams.get('files')!.status();
        return status.state === 'ready' && status.pid !== oldPid;
      }, 30_000, 'the switch to the latest definition');
      const newPid = Number(textOf(await session.client.callTool({ name: 'files__pid', arguments: {} })));
      expect(newPid).not.toBe(oldPid);
      expect(newPid).not.toBe(silentPid);
      await waitFor(() => !isAlive(oldPid), 20_000, 'the old process to exit');
    } finally {
      await session.close();
      await gateway.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('takes a change of catalog settings alone into the entry coming up, and a change back to the running definition keeps the running entry', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-gapless-'));
    const pidFile = join(folder, 'pid');
    const pool = testPool();
    const files = testConfig({ files: stdioFixture('files') }).servers.files!;
    const silent = testConfig({ files: silentServer(pidFile) }).servers.files!;
    try {
      await pool.apply({ files });
      await pool.settled(20_000);
      const running = pool.get('files')!;
      const pid = running.status().pid!;

      expect(await pool.apply({ files: silent })).toMatchObject({ changed: ['files'], updated: [] });
      const silentPid = await startedPid(pidFile);
      // Compared with what it is becoming: only its description differs.
      expect(await pool.apply({ files: { ...silent, description: 'coming up' } })).toMatchObject({ changed: [], updated: ['files'] });
      expect(pool.get('files')).toBe(running);
      expect(running.config.description).toBeUndefined();

      // Back to the running connection settings, with a description of its own: the switch is called off.
      expect(await pool.apply({ files: { ...files, description: 'kept' } })).toMatchObject({ changed: ['files'] });
      await pool.switched();
      expect(isAlive(silentPid)).toBe(false);
      expect(pool.get('files')).toBe(running);
      expect(running.status()).toMatchObject({ pid, state: 'ready', description: 'kept' });
    } finally {
      await pool.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

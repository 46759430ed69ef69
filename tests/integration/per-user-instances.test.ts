import { resolve } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { parseConfig } from '../../src/config/load.js';
import { Secret } from '../../src/auth/secret.js';
import { UpstreamAuthError, type CallerIdentity, type UpstreamAuth } from '../../src/upstream/auth/upstream-auth.js';
import { NOT_LISTED_YET } from '../../src/upstream/per-user-server.js';
import { UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { isAlive, ROOT, sdkClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { testPool } from '../helpers/upstream-pool.js';

const IDENTITY_FIXTURE = resolve(ROOT, 'tests/fixtures/identity-stdio-server.ts');

/** A stdio server with one process per user, told who it runs for through its environment. */
function perUserServer(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    transport: 'stdio',
    command: process.execPath,
    args: [...nodeArgs(IDENTITY_FIXTURE), '--for', '${user.id}'],
    cwd: ROOT,
    shared: false,
    env: { WHO: '${user.sub}', TOKEN: '${user.token}' },
    ...extra,
  };
}

function gatewayConfig(servers: Record<string, unknown>, instances: Record<string, number>) {
  return testConfig(servers, {
    auth: { jwt: { secret: JWT_SECRET } },
    access: { defaultLevel: 'call' },
    upstreamIdentity: { instances },
  });
}

interface User {
  id: string;
  token: string;
  client: Client;
  close(): Promise<void>;
}

async function user(url: string, sub: string, extra: Record<string, unknown> = {}): Promise<User> {
  const token = await hs256Token({ sub, email: `${sub}@example.com`, ...extra }, { expiresIn: '10m' });
  const { client, close } = await sdkClient(url, { headers: bearer(token), name: sub });
  return { id: `${sub}@example.com`, token, client, close };
}

interface Whoami {
  pid: number;
  who: string;
  token: string;
  args: string[];
}

async function whoami(client: Client, tool = 'ident__whoami'): Promise<Whoami> {
  const result = await client.callTool({ name: tool, arguments: {} });
  expect(result.isError, textOf(result)).toBeFalsy();
  return JSON.parse(textOf(result)) as Whoami;
}

/** The tool call's failure text: a tool error's, or the JSON-RPC error's. */
async function failureOf(client: Client, tool: string): Promise<string> {
  try {
    const result = await client.callTool({ name: tool, arguments: {} });
    expect(result.isError).toBe(true);
    return textOf(result);
  } catch (error) {
    return (error as Error).message;
  }
}

function api(gateway: RunningGateway, path: string, token: string, method = 'GET'): Promise<Response> {
  return fetch(gateway.url.replace(/\/mcp$/, '') + path, { method, headers: bearer(token) });
}

async function metric(gateway: RunningGateway, name: string, labels: string): Promise<number> {
  const text = await (await fetch(gateway.url.replace(/\/mcp$/, '/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('per-user stdio instances', () => {
  let gateway: RunningGateway;
  let admin: User;
  let alice: User;
  let bob: User;
  const pids = new Set<number>();

  beforeAll(async () => {
    gateway = await startGateway(gatewayConfig({ ident: perUserServer(), other: perUserServer() }, { idleSeconds: 0, maxPerUser: 1, maxTotal: 10 }));
    admin = await user(gateway.url, 'root', { groups: ['MCP-Admin'] });
    alice = await user(gateway.url, 'alice');
    bob = await user(gateway.url, 'bob');
  }, 60_000);

  afterAll(async () => {
    await Promise.all([admin?.close(), alice?.close(), bob?.close()]);
    const template = gateway?.conflux.upstreams.get('ident')?.status().pid;
    await gateway?.stop();
    // Nothing outlives the gateway: no user's instance, no template.
    for (const pid of [...pids, template]) if (pid) expect(isAlive(pid), `pid ${pid}`).toBe(false);
  }, 60_000);

  it("gives each user an instance of their own, started with that user's values, reused across calls", async () => {
    const template = gateway.conflux.upstreams.get('ident')!;
    expect(template.state).toBe('ready');
    // The catalog lists the server's tools from its template, started with no user.
    expect((await alice.client.listTools()).tools.map((t) => t.name)).toContain('ident__whoami');
    const templatePid = template.status().pid!;
    expect(isAlive(templatePid)).toBe(true);

    const [a, b] = await Promise.all([whoami(alice.client), whoami(bob.client)]);
    pids.add(a.pid).add(b.pid);
    expect(a).toMatchObject({ who: 'alice', token: alice.token, args: ['--for', 'alice@example.com'] });
    expect(b).toMatchObject({ who: 'bob', token: bob.token, args: ['--for', 'bob@example.com'] });
    expect(a.pid).not.toBe(b.pid);
    expect([a.pid, b.pid]).not.toContain(templatePid);

    // The same instance serves the user's next calls; concurrent ones share it.
    const again = await Promise.all([whoami(alice.client), whoami(alice.client), whoami(alice.client)]);
    expect(again.map((w) => w.pid)).toEqual([a.pid, a.pid, a.pid]);
    await expect(gateway.conflux.upstreams.get('ident')!.request('tools/list', {})).rejects.toThrow(/acts for each user/);
    expect(await metric(gateway, 'mcp_user_instance_starts_total', 'server_id="ident"')).toBe(2);
    expect(await metric(gateway, 'mcp_user_instances', 'server_id="ident",user="alice@example.com"')).toBe(1);
  }, 60_000);

  it('refuses an instance past maxPerUser with an error naming the cap, leaving the others running', async () => {
    const a = await whoami(alice.client);
    const failure = await failureOf(alice.client, 'other__whoami');
    expect(failure).toContain('user alice@example.com already has 1 instances (maxPerUser)');
    expect((await whoami(alice.client)).pid).toBe(a.pid);
    expect(isAlive(a.pid)).toBe(true);
  }, 60_000);

  it('marks the server per-user in /servers, for admins and others, without any user value', async () => {
    const adminView = (await (await api(gateway, '/servers', admin.token)).json()) as { servers: Record<string, unknown>[] };
    const publicView = (await (await api(gateway, '/servers', alice.token)).json()) as { servers: Record<string, unknown>[] };
    expect(adminView.servers.find((s) => s.name === 'ident')).toMatchObject({ perUser: true, state: 'ready', instances: 2 });
    expect(publicView.servers.find((s) => s.name === 'ident')).toEqual(expect.objectContaining({ perUser: true, state: 'ready' }));
    const rest = (await (await api(gateway, '/api/v1/servers/ident', admin.token)).json()) as Record<string, unknown>;
    expect(rest).toMatchObject({ perUser: true, definition: { env: { WHO: expect.any(String), TOKEN: expect.any(String) } } });
    for (const text of [JSON.stringify(adminView), JSON.stringify(publicView), JSON.stringify(rest)]) {
      expect(text).not.toContain(alice.token);
      expect(text).not.toContain(bob.token);
    }
  }, 60_000);

  it('lists the instances to admins, and stops one user’s on DELETE /api/v1/sessions/{user}', async () => {
    expect((await api(gateway, '/api/v1/sessions', alice.token)).status).toBe(403);
    expect((await api(gateway, '/api/v1/sessions/bob@example.com', alice.token, 'DELETE')).status).toBe(403);
    const listed = await api(gateway, '/api/v1/sessions', admin.token);
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(text).not.toContain(alice.token);
    const { sessions } = JSON.parse(text) as { sessions: { server: string; user: string; state: string; pid: number; startedAt: string; lastUsedAt: string }[] };
    const bobs = await whoami(bob.client);
    expect(sessions.map((s) => `${s.server}/${s.user}`)).toEqual(['ident/alice@example.com', 'ident/bob@example.com']);
    expect(sessions.find((s) => s.user === 'bob@example.com')).toMatchObject({ state: 'ready', pid: bobs.pid, startedAt: expect.any(String), lastUsedAt: expect.any(String) });

    const stopped = await api(gateway, '/api/v1/sessions/Bob@Example.com', admin.token, 'DELETE');
    expect(stopped.status).toBe(200);
    expect(await stopped.json()).toEqual({ user: 'bob@example.com', stopped: 1 });
    expect(isAlive(bobs.pid)).toBe(false);
    expect((await api(gateway, '/api/v1/sessions/bob@example.com', admin.token, 'DELETE')).status).toBe(404);
    expect(await metric(gateway, 'mcp_user_instance_stops_total', 'server_id="ident"')).toBeGreaterThanOrEqual(1);
    // Bob's next call starts a fresh one.
    const fresh = await whoami(bob.client);
    pids.add(fresh.pid);
    expect(fresh.pid).not.toBe(bobs.pid);
    expect(fresh.who).toBe('bob');
  }, 60_000);

  it("delivers what a user's instance says on its own to that user's sessions only", async () => {
    const heard = { alice: [] as string[], bob: [] as string[] };
    alice.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void heard.alice.push(String(n.params.data)));
    bob.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void heard.bob.push(String(n.params.data)));
    await alice.client.setLoggingLevel('info');
    await bob.client.setLoggingLevel('info');
    // Bob has a call in flight on his own instance while Alice's logs on its own.
    const bobCall = bob.client.callTool({ name: 'ident__log_later', arguments: { ms: 10 } });
    expect(textOf(await alice.client.callTool({ name: 'ident__log_later', arguments: { ms: 10 } }))).toBe('scheduled');
    await bobCall;
    await waitFor(() => heard.alice.includes('background line of alice') && heard.bob.includes('background line of bob'), 15_000, 'both background lines');
    // A round trip on each session: anything sent before it has arrived.
    await Promise.all([alice.client.ping(), bob.client.ping()]);
    expect(heard.alice).toEqual(['background line of alice']);
    expect(heard.bob).toEqual(['background line of bob']);
  }, 60_000);

  it('replaces an instance whose credential expired once its user comes with a new one', async () => {
    const first = await hs256Token({ sub: 'erin', email: 'erin@example.com' }, { expiresIn: '2s' });
    const early = await sdkClient(gateway.url, { headers: bearer(first) });
    try {
      const before = await whoami(early.client);
      pids.add(before.pid);
      expect(before.token).toBe(first);
      await waitFor(() => Date.now() > JSON.parse(Buffer.from(first.split('.')[1]!, 'base64url').toString()).exp * 1000, 10_000, 'the first token to expire');
      const second = await hs256Token({ sub: 'erin', email: 'erin@example.com' }, { expiresIn: '10m' });
      const later = await sdkClient(gateway.url, { headers: bearer(second) });
      try {
        const after = await whoami(later.client);
        pids.add(after.pid);
        expect(after.token).toBe(second);
        expect(after.pid).not.toBe(before.pid);
        expect(isAlive(before.pid)).toBe(false);
        // The new one is kept: the same token finds the same instance.
        expect((await whoami(later.client)).pid).toBe(after.pid);
      } finally {
        await later.close();
      }
    } finally {
      await early.close();
    }
  }, 60_000);

  it("stops a user's instance when their last session closes", async () => {
    const carol = await user(gateway.url, 'carol');
    const second = await sdkClient(gateway.url, { headers: bearer(carol.token) });
    const { pid } = await whoami(carol.client);
    pids.add(pid);
    // One of two sessions ends: the instance stays.
    await second.close();
    expect((await whoami(carol.client)).pid).toBe(pid);
    await carol.close();
    await waitFor(() => !isAlive(pid), 15_000, "carol's instance to stop with her last session");
    expect(gateway.conflux.upstreams.instances().some((i) => i.user === 'carol@example.com')).toBe(false);
  }, 60_000);
});

describe('per-user instances and config changes', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(gatewayConfig({ ident: perUserServer() }, { idleSeconds: 0, maxPerUser: 5, maxTotal: 10 }));
  }, 60_000);

  afterAll(async () => gateway?.stop(), 60_000);

  it('stop with their server when its definition changes, and when it is removed', async () => {
    const frank = await user(gateway.url, 'frank');
    try {
      const before = await whoami(frank.client);
      const template = gateway.conflux.upstreams.get('ident')!.status().pid!;
      // A change to what the catalog shows alone leaves the template and the instances running.
      await gateway.conflux.registry.setConfigServers(gatewayConfig({ ident: perUserServer({ description: 'described' }) }, {}).servers);
      expect(gateway.conflux.upstreams.get('ident')!.status()).toMatchObject({ pid: template, description: 'described' });
      expect((await whoami(frank.client)).pid).toBe(before.pid);
      await gateway.conflux.registry.setConfigServers(gatewayConfig({ ident: perUserServer({ env: { WHO: '${user.sub}', TOKEN: '${user.token}', CHANGED: 'yes' } }) }, {}).servers);
      // The switch goes on in the background: the old template and instances stop once it is done.
      await gateway.conflux.upstreams.switched();
      expect(isAlive(before.pid)).toBe(false);
      expect(isAlive(template)).toBe(false);
      await waitFor(() => gateway.conflux.upstreams.get('ident')?.state === 'ready', 15_000, 'the new template');
      const after = await whoami(frank.client);
      expect(after.pid).not.toBe(before.pid);
      expect(after.who).toBe('frank');
      const newTemplate = gateway.conflux.upstreams.get('ident')!.status().pid!;
      await gateway.conflux.registry.setConfigServers({});
      expect(isAlive(after.pid)).toBe(false);
      expect(isAlive(newTemplate)).toBe(false);
      expect(gateway.conflux.upstreams.instances()).toEqual([]);
    } finally {
      await frank.close();
    }
  }, 60_000);
});

describe('idle per-user instances', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway(gatewayConfig({ ident: perUserServer() }, { idleSeconds: 1, maxPerUser: 5, maxTotal: 10 }));
  }, 60_000);

  afterAll(async () => gateway?.stop(), 60_000);

  it('are stopped after idleSeconds without a request (their process gone) and counted as reaped', async () => {
    const dave = await user(gateway.url, 'dave');
    try {
      const { pid } = await whoami(dave.client);
      expect(await metric(gateway, 'mcp_user_instance_reaps_total', 'server_id="ident"')).toBe(0);
      await waitFor(() => !isAlive(pid), 20_000, "dave's idle instance to be reaped");
      await waitFor(async () => (await metric(gateway, 'mcp_user_instance_reaps_total', 'server_id="ident"')) === 1, 5_000, 'the reap to be counted');
      expect(gateway.conflux.upstreams.instances()).toEqual([]);
      expect(await metric(gateway, 'mcp_user_instances', 'server_id="ident",user="dave@example.com"')).toBe(0);
      // The session is still open: the next call starts a fresh instance.
      const next = await whoami(dave.client);
      expect(next.pid).not.toBe(pid);
      expect(next.who).toBe('dave');
      await gateway.stop();
      expect(isAlive(next.pid)).toBe(false);
    } finally {
      await dave.close();
    }
  }, 60_000);
});

describe('per-user HTTP instances', () => {
  let upstream: RunningUpstream;
  let gateway: RunningGateway;

  beforeAll(async () => {
    upstream = await startStreamableUpstream('remote');
    gateway = await startGateway(
      gatewayConfig({ remote: { url: upstream.url, shared: false, headers: { authorization: 'Bearer ${user.token}' } } }, { idleSeconds: 0, maxPerUser: 5, maxTotal: 10 }),
    );
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  }, 60_000);

  it("list from the first user's instance (kept after it stops), and send each user's requests with that user's own values", async () => {
    const entry = gateway.conflux.upstreams.get('remote')!;
    // No template can act for nobody: until a user connects, the entry says so.
    expect(entry.status()).toMatchObject({ perUser: true, toolCount: 0, lastError: NOT_LISTED_YET });
    expect(upstream.sessionsOpened).toBe(0);

    const alice = await user(gateway.url, 'alice');
    const bob = await user(gateway.url, 'bob');
    try {
      // Alice's session started her instance, which listed the tools for everyone.
      await waitFor(async () => (await alice.client.listTools()).tools.some((t) => t.name === 'remote__echo'), 15_000, 'the tools of the per-user server to be listed');
      expect(entry.lastError).toBeUndefined();
      const answers = await Promise.all([
        alice.client.callTool({ name: 'remote__echo', arguments: { text: 'from alice' } }),
        bob.client.callTool({ name: 'remote__echo', arguments: { text: 'from bob' } }),
      ]);
      expect(answers.map(textOf)).toEqual(['remote: from alice', 'remote: from bob']);
      // One upstream session per user, each sent with that user's own credential only.
      expect(upstream.sessionsOpened).toBe(2);
      const sent = new Set(upstream.authorizations);
      expect(sent).toEqual(new Set([`Bearer ${alice.token}`, `Bearer ${bob.token}`]));
      expect(gateway.conflux.upstreams.instances().map((i) => i.user).sort()).toEqual(['alice@example.com', 'bob@example.com']);

      await alice.close();
      await waitFor(() => !gateway.conflux.upstreams.instances().some((i) => i.user === 'alice@example.com'), 15_000, "alice's instance to stop");
      expect(entry.tools.map((t) => t.name)).toContain('echo');
      expect(textOf(await bob.client.callTool({ name: 'remote__echo', arguments: { text: 'still here' } }))).toBe('remote: still here');
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  }, 60_000);
});

describe('a per-user instance whose user must authorise first', () => {
  it('starts nothing and hands the UpstreamAuthError to the caller as it is', async () => {
    const upstream = await startStreamableUpstream('guarded');
    const required = new UpstreamAuthError('authorization-required', 'guarded', 'authorise "guarded" first', 'https://auth.example.com/authorize?x=1');
    let closed = 0;
    // The user's authorisation as the pool sees it: not there yet.
    const notAuthorised: UpstreamAuth = {
      ready: async () => Promise.reject(required),
      credentials: async () => Promise.reject(required),
      onRejected: async () => false,
      close: () => void closed++,
    };
    const pool = testPool({ authFor: (_server, _config, caller) => (caller ? notAuthorised : undefined) });
    const servers = parseConfig(JSON.stringify({ servers: { guarded: { url: upstream.url, shared: false } } }), { source: 'test', env: {} }).servers;
    const principal: Principal = { id: 'gina@example.com', subject: 'gina', groups: [], roles: [], scopes: [], method: 'jwt' };
    try {
      await pool.apply(servers);
      const [first, second] = await Promise.allSettled([pool.forCaller('guarded', { principal }), pool.forCaller('guarded', { principal })]);
      // Unchanged: the very error (its kind and URL), for both concurrent callers (one start shared).
      expect(first.status === 'rejected' && first.reason).toBe(required);
      expect(second.status === 'rejected' && second.reason).toBe(required);
      expect(closed).toBeGreaterThanOrEqual(1);
      expect(pool.instances()).toEqual([]);
      expect(upstream.sessionsOpened).toBe(0);
      // The entry itself never reaches anyone's instance.
      await expect(pool.get('guarded')!.request('tools/list', {})).rejects.toThrow(/acts for each user/);
      await expect(pool.forCaller('missing', { principal })).rejects.toThrow('upstream "missing" is unavailable: it is not configured');
    } finally {
      await pool.stop();
      await upstream.close();
    }
  });
});

function serversOf(servers: Record<string, unknown>) {
  return parseConfig(JSON.stringify({ servers }), { source: 'test', env: {} }).servers;
}

function person(id: string, token: string, expiresInMs: number): Principal {
  return { id, subject: id, groups: [], roles: [], scopes: [], method: 'jwt', token: new Secret(token), expiresAt: Date.now() + expiresInMs };
}

describe("a per-user instance's auth", () => {
  it("acts for one caller object per user, renewed with the user's newer credential at each call", async () => {
    const upstream = await startStreamableUpstream('renewed');
    const callers: CallerIdentity[] = [];
    // A token exchange reads `caller.principal.token` whenever it renews: the object it was given must follow the user.
    const pool = testPool({ authFor: (_server, _config, caller) => void (caller && callers.push(caller)) });
    try {
      await pool.apply(serversOf({ renewed: { url: upstream.url, shared: false } }));
      const first = person('ivy@example.com', 'first-token', 60_000);
      const instance = await pool.forCaller('renewed', { principal: first });
      expect(callers.map((c) => c.principal)).toEqual([first]);

      const renewed = person('ivy@example.com', 'renewed-token', 120_000);
      expect(await pool.forCaller('renewed', { principal: renewed })).toBe(instance);
      expect(callers).toHaveLength(1);
      expect(callers[0]!.principal).toBe(renewed);

      // An older credential still valid (another client of hers) does not take the place of the newer one.
      expect(await pool.forCaller('renewed', { principal: person('ivy@example.com', 'older-token', 30_000) })).toBe(instance);
      expect(callers[0]!.principal).toBe(renewed);
      // Another user's call is another instance, with its own caller object.
      await pool.forCaller('renewed', { principal: person('jon@example.com', 'jon-token', 60_000) });
      expect(callers).toHaveLength(2);
      expect(callers[0]!.principal).toBe(renewed);
      expect(callers[1]!.principal.id).toBe('jon@example.com');
    } finally {
      await pool.stop();
      await upstream.close();
    }
  });

  it("hands the factory's refusal to the caller as it is, holding no slot, and keeps a shared connection's to that connection", async () => {
    const upstream = await startStreamableUpstream('refused');
    const refusal = new UpstreamAuthError('misconfigured', 'refused', 'the credential for "refused" cannot be read');
    const shared = new UpstreamAuthError('misconfigured', 'fixed', 'the credential for "fixed" cannot be read');
    const pool = testPool({
      authFor: (server, _config, caller) => {
        if (server === 'refused' && caller) throw refusal;
        if (server === 'fixed') throw shared;
        return undefined;
      },
    });
    const principal = person('kim@example.com', 'kim-token', 60_000);
    try {
      // The factory throwing for one server does not stop the others from being applied.
      await pool.apply(serversOf({ refused: { url: upstream.url, shared: false }, fixed: { url: upstream.url }, open: { url: upstream.url } }));
      await expect(pool.forCaller('refused', { principal })).rejects.toBe(refusal);
      expect(pool.instances()).toEqual([]);
      // No half-made slot: the next call is refused the same way, not as "already held".
      await expect(pool.forCaller('refused', { principal })).rejects.toBe(refusal);
      await waitFor(() => pool.get('fixed')!.state === 'misconfigured' && pool.get('open')!.state === 'ready', 15_000, 'the shared connections to settle');
      expect(pool.get('fixed')!.lastError).toBe(shared.message);
      await expect(pool.get('fixed')!.request('tools/list', {})).rejects.toBe(shared);
    } finally {
      await pool.stop();
      await upstream.close();
    }
  });
});

describe('a per-user instance that is slow to start', () => {
  it('lets a caller who cancels stop waiting, and fails a start whose credentials never come at the connect timeout', async () => {
    const upstream = await startStreamableUpstream('slow');
    let closed = 0;
    // An authorization server that never answers.
    const hanging: UpstreamAuth = {
      ready: () => new Promise<void>(() => {}),
      credentials: () => new Promise(() => {}),
      onRejected: async () => false,
      close: () => void closed++,
    };
    const pool = testPool({ authFor: (_server, _config, caller) => (caller ? hanging : undefined) });
    try {
      await pool.apply(serversOf({ slow: { url: upstream.url, shared: false, connectTimeout: 1 } }));
      const cancel = new AbortController();
      const waiting = pool.forCaller('slow', { principal: person('lou@example.com', 'lou-token', 60_000) }, cancel.signal);
      cancel.abort();
      await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });

      const failure = await pool.forCaller('slow', { principal: person('max@example.com', 'max-token', 60_000) }).then(
        () => new Error('it started'),
        (error: unknown) => error as Error,
      );
      expect(failure).toBeInstanceOf(UpstreamUnavailableError);
      expect(failure.message).toBe('upstream "slow" is unavailable: its instance for max@example.com did not start: no credentials within 1s');
      // Both starts gave up (the cancelled caller's went on, and met the same deadline): nothing is held.
      await waitFor(() => closed === 2, 15_000, 'both starts to give up');
      expect(pool.instances()).toEqual([]);
      expect(upstream.sessionsOpened).toBe(0);
    } finally {
      await pool.stop();
      await upstream.close();
    }
  });
});

import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { ServerConfigSchema } from '../../src/config/schema.js';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { sdkClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/**
 * A Streamable HTTP MCP server on loopback whose `whoami` tool answers with its label, so a
 * test can count which replica served each call. It can be stopped and started again on the
 * same port, as a replica that restarts is.
 */
class ReplicaServer {
  #http: Server | undefined;
  #transports = new Map<string, StreamableHTTPServerTransport>();
  port = 0;

  constructor(readonly label: string) {}

  async start(): Promise<void> {
    const http = createServer(async (req, res) => {
      if (!req.url?.startsWith('/mcp')) return void res.writeHead(404).end();
      const sessionId = req.headers['mcp-session-id'];
      let transport = typeof sessionId === 'string' ? this.#transports.get(sessionId) : undefined;
      if (!transport) {
        if (sessionId) return void res.writeHead(404).end();
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          onsessioninitialized: (id) => void this.#transports.set(id, created),
          onsessionclosed: (id) => void this.#transports.delete(id),
        });
        await createDemoServer(this.label, { extraTools: ['whoami'] }).connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res);
    });
    await new Promise<void>((resolve) => http.listen(this.port, '127.0.0.1', resolve));
    this.port = (http.address() as AddressInfo).port;
    this.#http = http;
  }

  async stop(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    if (!http) return;
    await Promise.all([...this.#transports.values()].map((t) => t.close()));
    this.#transports.clear();
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
}

const SECRET_QUERY = 'secret-query-value-7c1f';
const SECRET_PASSWORD = 'secret-password-55ab';

interface ReplicaView {
  replica: string;
  state: string;
  url?: string;
  requests?: { ok: number; error: number };
}

async function serversJson(base: string, headers: Record<string, string> = {}): Promise<{ text: string; servers: { name: string; state: string; replicas?: ReplicaView[]; url?: string }[] }> {
  const response = await fetch(`${base}/api/v1/servers`, { headers });
  expect(response.status).toBe(200);
  const text = await response.text();
  return { text, servers: (JSON.parse(text) as { servers: { name: string; state: string; replicas?: ReplicaView[] }[] }).servers };
}

async function replicaStates(base: string): Promise<Record<string, string>> {
  const { servers } = await serversJson(base);
  const svc = servers.find((s) => s.name === 'svc');
  return Object.fromEntries((svc?.replicas ?? []).map((r) => [r.replica, r.state]));
}

/** The `ok`/`error` sample of `mcp_upstream_replica_requests_total` for each replica. */
function replicaRequests(metrics: string, status: 'ok' | 'error'): Record<string, number> {
  const counts: Record<string, number> = {};
  const pattern = new RegExp(String.raw`^mcp_upstream_replica_requests_total\{server_id="svc",replica="([^"]+)",status="${status}"\} (\d+)$`, 'gm');
  for (const match of metrics.matchAll(pattern)) counts[match[1]!] = Number(match[2]);
  return counts;
}

/** The problems `parseConfig` reports for one server entry. */
function problemsOf(server: unknown): string[] {
  try {
    parseConfig(JSON.stringify({ servers: { svc: server } }), { source: 'test', env: {} });
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('a server entry with urls', () => {
  it('takes URLs or { url, weight } entries, infers streamable-http, and defaults to round_robin', () => {
    const parsed = ServerConfigSchema.parse({ urls: ['http://a.internal/mcp', { url: 'http://b.internal/mcp', weight: 3 }] });
    expect(parsed).toMatchObject({
      transport: 'streamable-http',
      urls: [
        { url: 'http://a.internal/mcp', weight: 1 },
        { url: 'http://b.internal/mcp', weight: 3 },
      ],
      balance: { strategy: 'round_robin' },
    });
    // What was stored parses again to the same definition (the registry re-reads it).
    expect(ServerConfigSchema.parse(parsed)).toEqual(parsed);
  });

  it('refuses url and urls together, urls on stdio, per-user servers, an unknown strategy and a URL twice', () => {
    expect(problemsOf({ url: 'http://a/mcp', urls: ['http://b/mcp'] })).toEqual(['servers.svc.urls: give url or urls, not both']);
    expect(problemsOf({ transport: 'stdio', command: 'x', urls: ['http://b/mcp'] })[0]).toMatch(/^servers\.svc\.transport: urls lists the replicas of an HTTP server/);
    expect(problemsOf({ urls: ['http://a/mcp'], shared: false })[0]).toMatch(/^servers\.svc\.shared: a server with urls is shared/);
    expect(problemsOf({ urls: ['http://a/mcp'], auth: { method: 'oauth2', identity: 'user' } })[0]).toMatch(/^servers\.svc\.auth\.identity: identity: user acts for each user/);
    expect(problemsOf({ urls: ['http://a/mcp'], balance: { strategy: 'fastest' } })[0]).toMatch(/^servers\.svc\.balance\.strategy: expected one of round_robin, least_connections/);
    expect(problemsOf({ urls: ['http://a/mcp', 'http://a/mcp'] })).toEqual(['servers.svc.urls[1]: this URL is listed twice']);
    expect(problemsOf({ urls: [] })).toEqual(['servers.svc.urls: list at least one URL']);
    expect(problemsOf({ urls: ['ftp://a/x', { url: 'http://a/mcp', weight: 0 }] })).toHaveLength(2);
    // A server with one url reports its own problems, as before.
    expect(problemsOf({ transport: 'streamable-http', url: 'nope' })).toEqual(['servers.svc.url: expected a URL']);
  });
});

describe('a server with several urls (replicas)', () => {
  const replicas = [new ReplicaServer('r1'), new ReplicaServer('r2'), new ReplicaServer('r3')];
  const [r1, r2, r3] = replicas as [ReplicaServer, ReplicaServer, ReplicaServer];
  const origin = (replica: ReplicaServer) => `http://127.0.0.1:${replica.port}`;

  beforeAll(async () => {
    await Promise.all(replicas.map((r) => r.start()));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
  });

  /** The three replicas, one with a secret in its query and one with credentials in its URL. */
  function urls(): unknown[] {
    return [
      `${origin(r1)}/mcp`,
      { url: `http://127.0.0.1:${r2.port}/mcp?token=${SECRET_QUERY}`, weight: 1 },
      `http://admin:${SECRET_PASSWORD}@127.0.0.1:${r3.port}/mcp`,
    ];
  }

  /** Calls `svc__whoami` `count` times in a row; every call must succeed. Returns how many each replica answered. */
  async function callsPerReplica(client: Awaited<ReturnType<typeof sdkClient>>['client'], count: number): Promise<Record<string, number>> {
    const answered: Record<string, number> = {};
    for (let i = 0; i < count; i++) {
      const result = await client.callTool({ name: 'svc__whoami', arguments: {} });
      expect(result.isError, textOf(result)).toBeFalsy();
      const label = textOf(result).replace(/:whoami$/, '');
      answered[label] = (answered[label] ?? 0) + 1;
    }
    return answered;
  }

  describe('round_robin', () => {
    let root: string;
    let gateway: RunningGateway;
    let client: Awaited<ReturnType<typeof sdkClient>>;

    beforeAll(async () => {
      gateway = await startGateway(
        testConfig(
          { svc: { urls: urls(), balance: { strategy: 'round_robin' } } },
          { healthCheck: { intervalSeconds: 0.2, timeoutSeconds: 2, failureThreshold: 1 } },
        ),
      );
      root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
      client = await sdkClient(gateway.url);
    });

    afterAll(async () => {
      await client?.close();
      await gateway?.stop();
    });

    it('lists the tools once, and spreads calls evenly over all three replicas', async () => {
      const { tools } = await client.client.listTools();
      expect(tools.filter((t) => t.name === 'svc__whoami')).toHaveLength(1);
      expect(await callsPerReplica(client.client, 30)).toEqual({ r1: 10, r2: 10, r3: 10 });
    });

    it('takes a stopped replica out once its health check marks it, with no failed call, and back when it restarts on its port', async () => {
      await r2.stop();
      await waitFor(async () => (await replicaStates(root))[origin(r2)] === 'down', 15_000, 'the stopped replica marked down');
      expect(await replicaStates(root)).toEqual({ [origin(r1)]: 'ready', [origin(r2)]: 'down', [origin(r3)]: 'ready' });
      const { servers } = await serversJson(root);
      expect(servers.find((s) => s.name === 'svc')?.state).toBe('degraded');

      expect(await callsPerReplica(client.client, 20)).toEqual({ r1: 10, r3: 10 });

      await r2.start();
      await waitFor(async () => (await replicaStates(root))[origin(r2)] === 'ready', 15_000, 'the restarted replica back');
      expect(await callsPerReplica(client.client, 30)).toEqual({ r1: 10, r2: 10, r3: 10 });
    });

    it('exposes per-replica metrics, named without credentials', async () => {
      const metrics = await (await fetch(`${root}/metrics`)).text();
      expect(replicaRequests(metrics, 'ok')).toEqual({ [origin(r1)]: 30, [origin(r2)]: 20, [origin(r3)]: 30 });
      expect(replicaRequests(metrics, 'error')).toEqual({ [origin(r1)]: 0, [origin(r2)]: 0, [origin(r3)]: 0 });
      for (const replica of replicas) expect(metrics).toContain(`mcp_upstream_replica_up{server_id="svc",replica="${origin(replica)}"} 1`);
      expect(metrics).toContain(`mcp_upstream_replica_circuit_breaker_state{server_id="svc",replica="${origin(r1)}"} 0`);
      expect(metrics).not.toContain(SECRET_QUERY);
      expect(metrics).not.toContain(SECRET_PASSWORD);
    });

    it('shows each replica in /api/v1/servers and /servers without the credentials in their URLs', async () => {
      const { text, servers } = await serversJson(root);
      const svc = servers.find((s) => s.name === 'svc')!;
      expect(svc.replicas!.map((r) => [r.replica, r.state])).toEqual(replicas.map((r) => [origin(r), 'ready']));
      expect(svc.replicas!.map((r) => r.url)).toEqual([`${origin(r1)}/mcp`, `http://127.0.0.1:${r2.port}/mcp?token=[redacted]`, `http://[redacted]@127.0.0.1:${r3.port}/mcp`]);
      const status = await (await fetch(`${root}/servers`)).text();
      for (const listing of [text, status]) {
        expect(listing).not.toContain(SECRET_QUERY);
        expect(listing).not.toContain(SECRET_PASSWORD);
        expect(listing).not.toContain('admin:');
      }
      expect((JSON.parse(status) as { servers: { name: string; replicas?: unknown[] }[] }).servers.find((s) => s.name === 'svc')?.replicas).toHaveLength(3);
    });

    /** Requests each replica answered so far, as the server's status counts them. */
    async function answeredPerReplica(): Promise<number[]> {
      const { servers } = await serversJson(root);
      return servers.find((s) => s.name === 'svc')!.replicas!.map((r) => r.requests!.ok);
    }

    const increase = (before: number[], after: number[]) => after.map((count, i) => count - before[i]!);

    it('unsubscribes a resource on the replica it was subscribed on, and sets the log level on every replica', async () => {
      const { resources } = await client.client.listResources();
      const uri = resources.find((r) => r.uri.includes('readme'))!.uri;
      const start = await answeredPerReplica();
      await client.client.subscribeResource({ uri });
      const subscribed = await answeredPerReplica();
      const took = increase(start, subscribed);
      expect(took.reduce((a, b) => a + b)).toBe(1);
      const holder = took.indexOf(1);

      // A call moves the rotation on: an unsubscribe balanced like it would go elsewhere.
      await callsPerReplica(client.client, 1);
      const called = await answeredPerReplica();
      expect(increase(subscribed, called)[holder]).toBe(0);
      await client.client.unsubscribeResource({ uri });
      expect(increase(called, await answeredPerReplica())).toEqual([0, 1, 2].map((i) => (i === holder ? 1 : 0)));

      const beforeLevel = await answeredPerReplica();
      await client.client.setLoggingLevel('debug');
      expect(increase(beforeLevel, await answeredPerReplica())).toEqual([1, 1, 1]);
    });
  });

  describe('a replica that stops before anything marks it', () => {
    let gateway: RunningGateway;
    let root: string;
    let client: Awaited<ReturnType<typeof sdkClient>>;

    beforeAll(async () => {
      // No health checks: only the calls themselves find out.
      gateway = await startGateway(testConfig({ svc: { urls: urls() } }, { healthCheck: { intervalSeconds: 0 } }));
      root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
      client = await sdkClient(gateway.url);
    });

    afterAll(async () => {
      await client?.close();
      await gateway?.stop();
      await r2.start();
    });

    it('sends a call whose connection was refused to another replica, so none fails', async () => {
      expect(await callsPerReplica(client.client, 3)).toEqual({ r1: 1, r2: 1, r3: 1 });
      await r2.stop();
      const answered = await callsPerReplica(client.client, 12);
      expect(answered.r2).toBeUndefined();
      expect((answered.r1 ?? 0) + (answered.r3 ?? 0)).toBe(12);
      const { servers } = await serversJson(root);
      const stopped = servers.find((s) => s.name === 'svc')!.replicas!.find((r) => r.replica === origin(r2))!;
      // Each refusal is counted on the replica that refused, and none reached a caller.
      expect(stopped.requests!.ok).toBe(1);
      expect(stopped.requests!.error).toBeGreaterThan(0);
    });
  });

  describe('user_affinity', () => {
    let root: string;
    let gateway: RunningGateway;

    beforeAll(async () => {
      gateway = await startGateway(
        testConfig(
          { svc: { urls: urls(), balance: { strategy: 'user_affinity' } } },
          { auth: { jwt: { secret: JWT_SECRET } }, access: { defaultLevel: 'call' } },
        ),
      );
      root = gateway.url.replace(/\/mcp$/, '');
      const admin = bearer(await hs256Token({ sub: 'root', groups: ['MCP-Admin'] }));
      await waitFor(
        async () => {
          const { servers } = await serversJson(root, admin);
          return servers.find((s) => s.name === 'svc')?.replicas?.every((r) => r.state === 'ready') === true;
        },
        15_000,
        'all three replicas ready',
      );
    });

    afterAll(async () => {
      await gateway?.stop();
    });

    it('sends each principal to one replica, every time', async () => {
      const reached = new Map<string, string[]>();
      for (const user of ['alice', 'bob', 'carol', 'dave', 'erin']) {
        const connected = await sdkClient(gateway.url, { headers: bearer(await hs256Token({ sub: user })) });
        try {
          reached.set(user, Object.keys(await callsPerReplica(connected.client, 6)));
        } finally {
          await connected.close();
        }
      }
      // A second session of the same principal lands where the first did.
      const again = await sdkClient(gateway.url, { headers: bearer(await hs256Token({ sub: 'alice' })) });
      try {
        expect(Object.keys(await callsPerReplica(again.client, 3))).toEqual(reached.get('alice'));
      } finally {
        await again.close();
      }
      for (const labels of reached.values()) expect(labels).toHaveLength(1);
      // The principals are spread: not all on one replica.
      expect(new Set([...reached.values()].map((labels) => labels[0])).size).toBeGreaterThan(1);
    });

    it('shows a caller that is not an admin each replica by scheme, host and port only', async () => {
      const { text, servers } = await serversJson(root, bearer(await hs256Token({ sub: 'alice' })));
      const svc = servers.find((s) => s.name === 'svc')!;
      expect(svc.replicas).toEqual(replicas.map((r) => ({ replica: origin(r), state: 'ready' })));
      expect(svc.url).toBeUndefined();
      expect(text).not.toContain('/mcp');
      expect(text).not.toContain(SECRET_QUERY);
      expect(text).not.toContain(SECRET_PASSWORD);
    });
  });
});

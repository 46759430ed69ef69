import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { ServerConfigSchema, type ReplicatedServerConfig } from '../../src/config/schema.js';
import { UpstreamTimeoutError } from '../../src/upstream/errors.js';
import { ReplicatedServer } from '../../src/upstream/replicated-server.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { createDemoServer } from '../fixtures/demo-tools.js';
import { readBody } from '../fixtures/web-bridge.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freePort, sdkClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';
import { directDeps } from '../helpers/upstream-deps.js';

/**
 * A Streamable HTTP MCP server on loopback whose `whoami` tool answers with its label, so a
 * test can count which replica served each call. It can be stopped and started again on the
 * same port, as a replica that restarts is. It records every request it receives, and a call
 * of its `boom` tool has its connection reset once received, as a replica that crashes
 * mid-call.
 */
class ReplicaServer {
  #http: Server | undefined;
  #transports = new Map<string, StreamableHTTPServerTransport>();
  readonly #sockets = new Set<Socket>();
  port = 0;
  /** Every JSON-RPC request received (across restarts), in order. */
  readonly received: { method: string; params?: Record<string, unknown> }[] = [];

  constructor(readonly label: string) {}

  /** Requests of `method` received (a tool's calls when `tool` is given). */
  count(method: string, tool?: string): number {
    return this.received.filter((m) => m.method === method && (tool === undefined || m.params?.name === tool)).length;
  }

  /** Starts listening (on its port again after a stop); does nothing while it listens. */
  async start(): Promise<void> {
    if (this.#http) return;
    const http = createServer(asyncRequestListener(async (req, res) => {
      if (!req.url?.startsWith('/mcp')) return void res.writeHead(404).end();
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      const parsed: unknown = body ? JSON.parse(body) : undefined;
      const messages = (Array.isArray(parsed) ? parsed : parsed ? [parsed] : []) as { method?: unknown; params?: Record<string, unknown> }[];
      for (const message of messages) if (typeof message.method === 'string') this.received.push({ method: message.method, ...(message.params ? { params: message.params } : {}) });
      if (messages.some((m) => m.method === 'tools/call' && m.params?.name === 'boom')) return void req.socket.destroy();
      const sessionId = req.headers['mcp-session-id'];
      let transport = typeof sessionId === 'string' ? this.#transports.get(sessionId) : undefined;
      if (!transport) {
        if (sessionId) return void res.writeHead(404).end();
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          onsessioninitialized: (id) => void this.#transports.set(id, created),
          onsessionclosed: (id) => void this.#transports.delete(id),
        });
        await createDemoServer(this.label, { extraTools: ['whoami', 'boom'] }).connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res, parsed);
    }));
    http.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => http.listen(this.port, '127.0.0.1', resolve));
    this.port = (http.address() as AddressInfo).port;
    this.#http = http;
  }

  /**
   * Stops as a crashed replica does: its connections end abruptly first. (Closing the sessions
   * first would end the GET stream cleanly, and the client would keep that connection alive
   * for its next request, which the closed server then resets.)
   */
  async stop(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    if (!http) return;
    const closing = [...this.#sockets].map((socket) => new Promise((resolve) => socket.once('close', resolve)));
    for (const socket of this.#sockets) socket.destroy();
    http.closeAllConnections();
    await Promise.all(closing);
    await Promise.all([...this.#transports.values()].map((t) => t.close()));
    this.#transports.clear();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    // A refused connection takes a round of I/O, in which a client holding one of the closed connections for reuse hears that it ended.
    await new Promise<void>((resolve) => connect(this.port, '127.0.0.1').once('error', () => resolve()));
  }
}

const SECRET_QUERY = 'secret-query-value-7c1f';
const SECRET_PASSWORD = 'secret-password-55ab';

/** A replica's status fields as a test reads them. */
interface ReplicaStatusView {
  breaker: string;
  inFlight: number;
  requests: { ok: number; error: number };
  state: string;
}

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
    const two = ['http://a/mcp', 'http://b/mcp'];
    expect(problemsOf({ url: 'http://a/mcp', urls: two })).toEqual(['servers.svc.urls: give url or urls, not both']);
    expect(problemsOf({ transport: 'stdio', command: 'x', urls: two })[0]).toMatch(/^servers\.svc\.transport: urls lists the replicas of an HTTP server/);
    expect(problemsOf({ urls: two, shared: false })[0]).toMatch(/^servers\.svc\.shared: a server with urls is shared/);
    expect(problemsOf({ urls: two, auth: { method: 'oauth2', identity: 'user' } })[0]).toMatch(/^servers\.svc\.auth\.identity: identity: user acts for each user/);
    expect(problemsOf({ urls: two, balance: { strategy: 'fastest' } })[0]).toMatch(/^servers\.svc\.balance\.strategy: expected one of round_robin, least_connections/);
    expect(problemsOf({ urls: ['http://a/mcp', 'http://a/mcp'] })).toEqual(['servers.svc.urls[1]: this URL is listed twice']);
    expect(problemsOf({ urls: [] })).toEqual(['servers.svc.urls: list at least two URLs (a server with one URL gives it as url)']);
    expect(problemsOf({ urls: ['ftp://a/x', { url: 'http://a/mcp', weight: 0 }] })).toHaveLength(2);
    // A server with one url reports its own problems, as before.
    expect(problemsOf({ transport: 'streamable-http', url: 'nope' })).toEqual(['servers.svc.url: expected a URL']);
  });

  it('takes one backend written two ways as a URL listed twice (host case, default port, trailing slash)', () => {
    expect(problemsOf({ urls: ['http://Search.internal/mcp', 'http://search.internal:80/mcp/', { url: 'https://b.internal:443/', weight: 2 }, 'https://B.internal'] })).toEqual([
      'servers.svc.urls[1]: this URL is listed twice',
      'servers.svc.urls[3]: this URL is listed twice',
    ]);
    // Another path, port or query is another replica.
    expect(problemsOf({ urls: ['http://a.internal/mcp', 'http://a.internal/mcp2', 'http://a.internal:8080/mcp', 'http://a.internal/mcp?shard=2'] })).toEqual([]);
  });

  it('points a single URL, or urls given as one string, to url', () => {
    expect(problemsOf({ urls: ['http://a/mcp'] })).toEqual(['servers.svc.urls: list at least two URLs (a server with one URL gives it as url)']);
    expect(problemsOf({ urls: 'http://a/mcp' })).toEqual(['servers.svc.urls: expected a list of URLs (a server with one URL gives it as url)']);
    expect(problemsOf({ transport: 'sse', urls: 'http://a/sse' })).toEqual(['servers.svc.urls: expected a list of URLs (a server with one URL gives it as url)']);
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

  describe('two replicas that stop before anything marks them', () => {
    let gateway: RunningGateway;
    let root: string;
    let client: Awaited<ReturnType<typeof sdkClient>>;

    beforeAll(async () => {
      gateway = await startGateway(testConfig({ svc: { urls: urls() } }, { healthCheck: { intervalSeconds: 0 } }));
      root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
      client = await sdkClient(gateway.url);
    });

    afterAll(async () => {
      await client?.close();
      await gateway?.stop();
      await Promise.all([r1.start(), r2.start()]);
    });

    it('tries every replica a call did not reach, not just a second one', async () => {
      expect(await callsPerReplica(client.client, 3)).toEqual({ r1: 1, r2: 1, r3: 1 });
      await Promise.all([r1.stop(), r2.stop()]);
      // The rotation is back at r1: the first call is refused by r1, then by r2, and served by r3.
      expect(await callsPerReplica(client.client, 6)).toEqual({ r3: 6 });
      const { servers } = await serversJson(root);
      const refusals = servers.find((s) => s.name === 'svc')!.replicas!.map((r) => r.requests!.error);
      expect(refusals[0]).toBeGreaterThan(0);
      expect(refusals[1]).toBeGreaterThan(0);
      expect(refusals[2]).toBe(0);
    });
  });

  describe('a call that may have reached its replica', () => {
    let gateway: RunningGateway;
    let root: string;
    let client: Awaited<ReturnType<typeof sdkClient>>;

    beforeAll(async () => {
      gateway = await startGateway(testConfig({ svc: { urls: urls() } }, { healthCheck: { intervalSeconds: 0 } }));
      root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
      client = await sdkClient(gateway.url);
    });

    afterAll(async () => {
      await client?.close();
      await gateway?.stop();
    });

    it('is not sent again when its connection is reset after the replica received it', async () => {
      const before = replicas.map((r) => r.count('tools/call', 'boom'));
      const result = await client.client.callTool({ name: 'svc__boom', arguments: {} });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/svc/);
      const after = replicas.map((r) => r.count('tools/call', 'boom'));
      // Received once, by one replica: the gateway cannot know it was not carried out.
      expect(after.reduce((a, b) => a + b) - before.reduce((a, b) => a + b)).toBe(1);
    });
  });

  describe('least_connections', () => {
    let gateway: RunningGateway;
    let root: string;
    let client: Awaited<ReturnType<typeof sdkClient>>;

    beforeAll(async () => {
      gateway = await startGateway(testConfig({ svc: { urls: urls(), balance: { strategy: 'least_connections' } } }));
      root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
      client = await sdkClient(gateway.url);
    });

    afterAll(async () => {
      await client?.close();
      await gateway?.stop();
    });

    const inFlight = async () => {
      const { servers } = await serversJson(root);
      return (servers.find((s) => s.name === 'svc')!.replicas as (ReplicaView & { inFlight: number })[]).map((r) => r.inFlight);
    };

    it('sends calls to the replicas with the fewest in flight, and counts an aborted call out', async () => {
      const abort = new AbortController();
      const sleeping = client.client.callTool({ name: 'svc__sleep', arguments: { ms: 60_000 } }, undefined, { signal: abort.signal }).catch((error: unknown) => error);
      await waitFor(async () => (await inFlight()).reduce((a, b) => a + b) === 1, 15_000, 'the sleeping call in flight');
      const busy = (await inFlight()).indexOf(1);
      // While one replica is busy the others take the calls, in turn.
      const answered = await callsPerReplica(client.client, 4);
      expect(answered[replicas[busy]!.label]).toBeUndefined();
      expect(Object.values(answered)).toEqual([2, 2]);

      abort.abort();
      await sleeping;
      await waitFor(async () => (await inFlight()).every((n) => n === 0), 15_000, 'the aborted call counted out');
      expect(await inFlight()).toEqual([0, 0, 0]);
      expect(await callsPerReplica(client.client, 30)).toEqual({ r1: 10, r2: 10, r3: 10 });
    });
  });

  describe('weighted', () => {
    let gateway: RunningGateway;

    beforeAll(async () => {
      const [a, b, c] = replicas.map((r) => `${origin(r)}/mcp`);
      gateway = await startGateway(testConfig({ svc: { urls: [{ url: a, weight: 3 }, { url: b, weight: 2 }, c], balance: { strategy: 'weighted' } } }));
      const root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
    });

    afterAll(async () => {
      await gateway?.stop();
    });

    it('spreads calls by weight', async () => {
      const client = await sdkClient(gateway.url);
      try {
        expect(await callsPerReplica(client.client, 60)).toEqual({ r1: 30, r2: 20, r3: 10 });
      } finally {
        await client.close();
      }
    });
  });

  describe('session_affinity', () => {
    let gateway: RunningGateway;

    beforeAll(async () => {
      gateway = await startGateway(testConfig({ svc: { urls: urls(), balance: { strategy: 'session_affinity' } } }));
      const root = gateway.url.replace(/\/mcp$/, '');
      await waitFor(async () => Object.values(await replicaStates(root)).filter((s) => s === 'ready').length === 3, 15_000, 'all three replicas ready');
    });

    afterAll(async () => {
      await gateway?.stop();
    });

    it('keeps every call of a session on one replica, sessions spread', async () => {
      const landed: string[] = [];
      for (let i = 0; i < 8; i++) {
        const client = await sdkClient(gateway.url);
        try {
          const answered = Object.keys(await callsPerReplica(client.client, 4));
          expect(answered).toHaveLength(1);
          landed.push(answered[0]!);
        } finally {
          await client.close();
        }
      }
      expect(new Set(landed).size).toBeGreaterThan(1);
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
      // The ring is built from the replicas' URLs, whose ports differ from run to run: twelve
      // principals leave a chance of about 3 × 3⁻¹² that all of them land on one replica, where
      // five had left one of about 1 in 80.
      const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar'];
      const reached = new Map<string, string[]>();
      for (const user of users) {
        const connected = await sdkClient(gateway.url, { headers: bearer(await hs256Token({ sub: user })) });
        try {
          reached.set(user, Object.keys(await callsPerReplica(connected.client, 4)));
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

  describe('a ReplicatedServer on its own', () => {
    const opened: ReplicatedServer[] = [];

    afterAll(async () => {
      await Promise.all(opened.map((server) => server.stop()));
    });

    /** A replicated server over `urls` (the three replicas unless given): breaker open after one failure, for 1 s of `now`. */
    async function replicated(options: { urls?: string[]; now?: () => number; pings?: boolean; ready?: number } = {}): Promise<ReplicatedServer> {
      const config = ServerConfigSchema.parse({ urls: options.urls ?? replicas.map((r) => `${origin(r)}/mcp`) }) as ReplicatedServerConfig;
      const connection = directDeps({
        reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 0 },
        health: { breaker: { failureThreshold: 1, cooldownMs: 1000 }, pingIntervalMs: options.pings ? 100 : 0, pingTimeoutMs: 1000, pingFailureThreshold: 1 },
        ...(options.now ? { now: options.now } : {}),
      });
      const server = new ReplicatedServer('svc', config, { connection, authFor: () => undefined, onChange: () => {} });
      opened.push(server);
      server.start();
      const ready = options.ready ?? config.urls.length;
      await waitFor(() => server.status().replicas!.filter((r) => r.state === 'ready').length === ready, 15_000, `${ready} replicas ready`);
      return server;
    }

    const call = (server: ReplicatedServer, tool: string, args: Record<string, unknown> = {}, options: { timeout?: number; signal?: AbortSignal } = {}) =>
      server.request('tools/call', { name: tool, arguments: args }, options);
    const whoami = async (server: ReplicatedServer) => textOf(await call(server, 'whoami')).replace(/:whoami$/, '');
    const column = <K extends keyof ReplicaStatusView>(server: ReplicatedServer, key: K) => server.status().replicas!.map((r) => (r as unknown as ReplicaStatusView)[key]);

    it('counts a half-open replica whose probe is out as unable to take a call, instead of spending a retry on its refusal', async () => {
      let now = 1_000_000;
      const server = await replicated({ now: () => now });
      // A timeout opens r1's breaker, then r2's (r1 is skipped while open).
      await expect(call(server, 'sleep', { ms: 10_000 }, { timeout: 100 })).rejects.toBeInstanceOf(UpstreamTimeoutError);
      await expect(call(server, 'sleep', { ms: 10_000 }, { timeout: 100 })).rejects.toBeInstanceOf(UpstreamTimeoutError);
      expect(column(server, 'breaker')).toEqual(['open', 'open', 'closed']);
      now += 1000;
      expect(await whoami(server)).toBe('r3');
      // The next two calls are r1's and r2's probes, held in flight.
      const probes = new AbortController();
      const held = [call(server, 'sleep', { ms: 60_000 }, { signal: probes.signal }), call(server, 'sleep', { ms: 60_000 }, { signal: probes.signal })].map((p) => p.catch(() => undefined));
      try {
        expect(column(server, 'inFlight')).toEqual([1, 1, 0]);
        const errors = column(server, 'requests').map((r) => (r as { error: number }).error);
        for (let i = 0; i < 3; i++) expect(await whoami(server)).toBe('r3');
        // Nothing was sent to the probing replicas only to be refused.
        expect(column(server, 'requests').map((r) => (r as { error: number }).error)).toEqual(errors);
      } finally {
        probes.abort();
        await Promise.all(held);
      }
      expect(column(server, 'inFlight')).toEqual([0, 0, 0]);
    });

    it('judges replicas without building their status for each request', async () => {
      const server = await replicated();
      const status = vi.spyOn(UpstreamConnection.prototype, 'status');
      try {
        for (let i = 0; i < 6; i++) await whoami(server);
        expect(status).not.toHaveBeenCalled();
      } finally {
        status.mockRestore();
      }
    });

    it('reports the breaker of the connected replicas: one that is down does not make the server look closed', async () => {
      const dead = `http://127.0.0.1:${await freePort()}/mcp`;
      const server = await replicated({ urls: [`${origin(r1)}/mcp`, dead], ready: 1 });
      await waitFor(() => server.status().replicas![1]!.state === 'down', 15_000, 'the unreachable replica down');
      await expect(call(server, 'sleep', { ms: 10_000 }, { timeout: 100 })).rejects.toBeInstanceOf(UpstreamTimeoutError);
      expect(column(server, 'breaker')).toEqual(['open', 'closed']);
      expect(server.status().breaker).toBe('open');
    });

    describe('resource subscriptions', () => {
      const readme = (server: ReplicatedServer) => server.resources.find((r) => r.uri.includes('readme'))!.uri;

      it('moves a subscription to another replica when its replica goes down, and unsubscribes it there', async () => {
        const server = await replicated({ urls: [`${origin(r1)}/mcp`, `${origin(r2)}/mcp`], pings: true });
        const uri = readme(server);
        const subscribed = [r1.count('resources/subscribe'), r2.count('resources/subscribe')];
        await server.request('resources/subscribe', { uri });
        expect(r1.count('resources/subscribe')).toBe(subscribed[0]! + 1);
        try {
          await r1.stop();
          await waitFor(() => r2.count('resources/subscribe') === subscribed[1]! + 1, 15_000, 'the subscription moved to r2');
          // r2's session holds it now: its updates reach the gateway.
          expect(textOf(await call(server, 'touch', { uri }))).toBe('notified');
        } finally {
          await r1.start();
        }
        await waitFor(() => server.status().replicas![0]!.state === 'ready', 15_000, 'r1 back');
        const unsubscribed = r2.count('resources/unsubscribe');
        await server.request('resources/unsubscribe', { uri });
        expect(r2.count('resources/unsubscribe')).toBe(unsubscribed + 1);
        // r1 (2025: its new session holds nothing) was not subscribed again.
        expect(r1.count('resources/subscribe')).toBe(subscribed[0]! + 1);
      });

      it('subscribes again on the replica’s new upstream session when no other replica could take it', async () => {
        const server = await replicated({ urls: [`${origin(r1)}/mcp`, `${origin(r2)}/mcp`], pings: true });
        const uri = readme(server);
        try {
          await r2.stop();
          await waitFor(() => server.status().replicas![1]!.state === 'down', 15_000, 'r2 down');
          const before = r1.count('resources/subscribe');
          await server.request('resources/subscribe', { uri });
          await r1.stop();
          await waitFor(() => server.status().replicas![0]!.state === 'down', 15_000, 'r1 down');
          await r1.start();
          await waitFor(() => r1.count('resources/subscribe') === before + 2, 15_000, 'subscribed again on r1');
          expect(textOf(await call(server, 'touch', { uri }))).toBe('notified');
        } finally {
          await Promise.all([r1.start(), r2.start()]);
        }
      });

      it('keeps an unsubscribe that failed where it was, so that the next one goes to the same replica', async () => {
        const server = await replicated({ urls: [`${origin(r1)}/mcp`, `${origin(r2)}/mcp`] });
        const uri = readme(server);
        const before = r1.count('resources/subscribe');
        await server.request('resources/subscribe', { uri });
        const holder = r1.count('resources/subscribe') > before ? 0 : 1;
        const stopped = holder === 0 ? r1 : r2;
        try {
          await stopped.stop();
          const errors = server.status().replicas![holder]!.requests.error;
          await expect(server.request('resources/unsubscribe', { uri })).rejects.toThrow();
          await expect(server.request('resources/unsubscribe', { uri })).rejects.toThrow();
          expect(server.status().replicas![holder]!.requests.error).toBe(errors + 2);
        } finally {
          await stopped.start();
        }
      });
    });
  });
});

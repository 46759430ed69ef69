import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { nodeArgs, nodeScript } from '../helpers/built-entries.js';
import { freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { ROOT, STDIO_FIXTURE, textOf, waitFor } from '../helpers/gateway.js';
import { commandOf, descendantsOf, parentOf, running, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-processes.js';
import { scaled } from '../helpers/load-scale.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { newRedis, redisAvailable, TEST_REDIS_URL } from '../helpers/redis.js';

/**
 * Conflux as it is deployed to scale out: `conflux serve` processes sharing PostgreSQL and Redis
 * behind a load balancer without stickiness, one of them killed mid-session; one process with
 * `CONFLUX_WORKERS=2`; and one process on its own memory. The clients are the SDK's.
 */
const postgres = await postgresAvailable();
const services = postgres && (await redisAvailable());

/** Requests per principal per hour: the limit the two replicas enforce together. */
const RATE_LIMIT = 100;
const VERSION = '2025-11-25';
const UPDATED = 'demo://alpha/static';
/** Every principal of a run is new, so that no count in Redis from an earlier run applies. */
const run = randomUUID().slice(0, 8);
const token = (sub: string, groups: string[] = []) => hs256Token({ sub: `${sub}-${run}`, groups }, { expiresIn: '1h' });

/** The fixture upstream over stdio: tools, progress, sampling and a subscribable resource. */
async function writeConfig(): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'conflux-scale-')), 'config.json');
  const config = {
    gateway: {
      auth: { jwt: { secret: JWT_SECRET } },
      access: { defaultLevel: 'call' },
      rateLimit: { perPrincipal: RATE_LIMIT, windowSeconds: 3600 },
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      shutdownGraceSeconds: 2,
    },
    servers: { alpha: { command: process.execPath, args: [...nodeArgs(STDIO_FIXTURE), 'alpha'], cwd: ROOT, required: true } },
  };
  await writeFile(path, JSON.stringify(config));
  return path;
}

/** `REDIS_URL` with every key of the gateways under `prefix` (ioredis reads `keyPrefix` from the URL). */
function redisUrl(prefix: string): string {
  const url = new URL(TEST_REDIS_URL);
  url.searchParams.set('keyPrefix', prefix);
  return url.toString();
}

/** Deletes what the gateways stored under `prefix`. */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = newRedis();
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

describe.skipIf(!services)('two conflux processes sharing PostgreSQL and Redis, behind a round-robin proxy', { timeout: scaled(60_000) }, () => {
  const prefix = `test-scale-${run}:`;
  let database: TestDatabase;
  let gamma: RunningUpstream;
  let replicas: GatewayProcess[] = [];
  let proxy: RoundRobinProxy;
  let peer: Peer;
  let redis: Redis | undefined;

  beforeAll(async () => {
    redis = newRedis();
    database = await freshPostgres();
    const config = await writeConfig();
    const env = { DATABASE_URL: database.url!, REDIS_URL: redisUrl(prefix) };
    const started = await Promise.allSettled([0, 1].map(() => startGatewayProcess({ config, env })));
    replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    proxy = await roundRobinProxy(replicas.map((r) => r.url));
    peer = await connectPeer(proxy.url, await token('ann'));
  }, scaled(180_000));

  afterAll(async () => {
    try {
      await peer?.close();
      await proxy?.close();
    } finally {
      try {
        await stopAll(replicas);
      } finally {
        await gamma?.close();
        await database?.dispose();
        await deleteKeys(prefix);
        redis?.disconnect();
      }
    }
  }, scaled(60_000));

  /** A session's record as the replicas share it in Redis. */
  async function record(id: string): Promise<{ streamHolder?: string; subscriptions?: string[] } | undefined> {
    const json = await redis!.hget(`${prefix}conflux:session:${id}`, 'record');
    return json ? JSON.parse(json) : undefined;
  }

  it('serves one SDK session from both: tools, progress, sampling, a subscription and its updates', async () => {
    for (const replica of replicas) {
      expect(await (await fetch(`${replica.base}/ready`)).json()).toMatchObject({ ready: true, database: 'ok', redis: 'ok', sessions: { backend: 'redis', state: 'ok' } });
    }
    const names = (await peer.client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__count', 'alpha__ask_llm', 'alpha__touch']));
    for (let i = 0; i < 4; i++) expect(textOf(await peer.client.callTool({ name: 'alpha__echo', arguments: { text: `hi ${i}` } }))).toBe(`alpha: hi ${i}`);
    expect(new Set(proxy.hits.filter((h) => h.session === peer.sessionId).map((h) => h.target))).toEqual(new Set([0, 1]));

    for (let round = 0; round < 2; round++) {
      const seen: number[] = [];
      const result = await peer.client.callTool({ name: 'alpha__count', arguments: { n: 3 } }, { onprogress: (p) => void seen.push(p.progress) });
      expect(textOf(result)).toBe('alpha counted to 3');
      expect(seen).toEqual([1, 2, 3]);
    }

    const before = proxy.hits.length;
    expect(textOf(await peer.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'why?' } }))).toBe('alpha heard: ann answers why?');
    const call = proxy.hits.slice(before).find((h) => isCall(h.rpc, 'alpha__ask_llm'))!;
    const answer = proxy.hits.slice(before).find((h) => isAnswer(h.rpc))!;
    // The request carried the id of the replica that asked, whichever replica the answer reached.
    expect(String((answer.rpc as { id: unknown }).id)).toMatch(/^[\w-]+:\d+$/);
    expect([call.target, answer.target].sort()).toEqual([0, 1]);

    await peer.client.subscribeResource({ uri: UPDATED });
    expect((await record(peer.sessionId))?.subscriptions).toEqual([UPDATED]);
    // Each copy subscribes its own upstream: touched through both, the resource is updated twice.
    const notifiedBy = new Set<number>();
    let notified = 0;
    await waitFor(async () => {
      const mark = proxy.hits.length;
      const text = textOf(await peer.client.callTool({ name: 'alpha__touch', arguments: { uri: UPDATED } }));
      if (text === 'notified') {
        notified++;
        notifiedBy.add(proxy.hits.slice(mark).find((h) => isCall(h.rpc, 'alpha__touch'))!.target);
      }
      return notifiedBy.size === 2;
    }, 15_000, 'both replicas to have subscribed their upstream');
    await waitFor(() => peer.updates.length >= notified, 10_000, 'an update on the GET stream for each touch');
    expect(peer.updates).toEqual(Array(notified).fill(UPDATED));
  });

  it('applies a server registered through one replica on the other', async () => {
    gamma = await startStreamableUpstream('gamma');
    const admin = { authorization: `Bearer ${await token('root', ['MCP-Admin'])}` };
    const [a, b] = replicas as [GatewayProcess, GatewayProcess];
    const created = await fetch(`${a.base}/api/v1/servers`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'gamma', url: gamma.url }) });
    expect(created.status).toBe(201);
    // Announced on the bus and read back from the database there: usually well within a second.
    await waitFor(async () => {
      const tools = (await (await fetch(`${b.base}/api/v1/tools`, { headers: admin })).json()) as { tools: { name: string }[] };
      return tools.tools.some((t) => t.name === 'gamma__echo');
    }, 30_000, 'the other replica to serve the registered server');
    const there = (await (await fetch(`${b.base}/api/v1/servers/gamma`, { headers: admin })).json()) as Record<string, unknown>;
    expect(there).toMatchObject({ name: 'gamma', source: 'api', state: 'ready' });
  });

  it('holds a principal to one rate limit across both replicas', async () => {
    const credential = { authorization: `Bearer ${await token('rita')}` };
    const session = await initializeRaw(proxy.url, credential); // two requests: initialize, initialized
    for (let i = 3; i <= RATE_LIMIT; i++) {
      const response = await post(proxy.url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: `${i}` } } }, session, credential);
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
    expect(new Set(proxy.hits.filter((h) => h.session === session).map((h) => h.target))).toEqual(new Set([0, 1]));
    const refused = await post(proxy.url, { jsonrpc: '2.0', id: 'over', method: 'tools/call', params: { name: 'alpha__echo', arguments: { text: 'one too many' } } }, session, credential);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ jsonrpc: '2.0', error: { message: expect.stringContaining('rate limit exceeded') } });
    // Refused by each replica, however few of the requests it served itself.
    for (const replica of replicas) expect((await post(replica.url, { jsonrpc: '2.0', id: 'again', method: 'ping' }, session, credential)).status).toBe(429);
    // Another principal is not affected.
    expect(textOf(await peer.client.callTool({ name: 'alpha__echo', arguments: { text: 'still mine' } }))).toBe('alpha: still mine');
  });

  it('goes on through the other replica after the one holding the GET streams is killed', async () => {
    const credential = { authorization: `Bearer ${await token('ray')}` };
    // The replica holding the SDK client's GET stream.
    const holderIndex = proxy.hits.filter((h) => h.method === 'GET' && h.session === peer.sessionId).at(-1)!.target;
    const [holder, other] = [replicas[holderIndex]!, replicas[1 - holderIndex]!];
    const holderId = (await record(peer.sessionId))?.streamHolder;
    expect(holderId).toEqual(expect.any(String));

    // A second session, its GET stream opened on the same replica, reading two updates. It
    // subscribes on that replica too: a subscription made through the other one reaches this
    // replica's copy of the session in the background, and an update sent before then is lost.
    const session = await initializeRaw(proxy.url, credential);
    expect((await post(holder.url, { jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri: UPDATED } }, session, credential)).status).toBe(200);
    const stream = await openStream(holder.url, session, credential);
    await waitFor(async () => (await record(session))?.streamHolder === holderId, 5000, 'the replica to hold the stream');
    expect(await callText(holder.url, session, credential, 2, 'alpha__touch', { uri: UPDATED })).toBe('notified');
    const first = await stream.next();
    expect(await callText(holder.url, session, credential, 3, 'alpha__touch', { uri: UPDATED })).toBe('notified');
    const second = await stream.next();
    for (const event of [first, second]) expect(event.data).toEqual({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: UPDATED } });

    const children = holder.descendants();
    expect(children.some((pid) => commandOf(pid).includes([...nodeArgs(STDIO_FIXTURE), 'alpha'].join(' ')))).toBe(true);
    const ended = stream.ended();
    await holder.kill();
    await ended;
    await waitFor(() => !children.some(running), 10_000, 'the killed replica’s children to exit');

    // The SDK client's session goes on: calls, progress and sampling through the survivor.
    const served = proxy.hits.length;
    for (let i = 0; i < 3; i++) expect(textOf(await peer.client.callTool({ name: 'alpha__echo', arguments: { text: `after ${i}` } }))).toBe(`alpha: after ${i}`);
    const seen: number[] = [];
    expect(textOf(await peer.client.callTool({ name: 'alpha__count', arguments: { n: 2 } }, { onprogress: (p) => void seen.push(p.progress) }))).toBe('alpha counted to 2');
    expect(seen).toEqual([1, 2]);
    expect(textOf(await peer.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'still?' } }))).toBe('alpha heard: ann answers still?');
    expect(new Set(proxy.hits.slice(served).map((h) => h.target))).toEqual(new Set([1 - holderIndex]));

    // Its GET stream came back by itself, resumed from the last event it saw, on the survivor;
    // an update reaches it there once the survivor holds it.
    await waitFor(() => proxy.hits.some((h) => h.method === 'GET' && h.session === peer.sessionId && h.lastEventId !== undefined && h.target === 1 - holderIndex), 15_000, 'the SDK client to resume its GET stream');
    await waitFor(async () => ![undefined, holderId].includes((await record(peer.sessionId))?.streamHolder), 10_000, 'the survivor to hold the stream');
    const updates = peer.updates.length;
    expect(textOf(await peer.client.callTool({ name: 'alpha__touch', arguments: { uri: UPDATED } }))).toBe('notified');
    await waitFor(() => peer.updates.length > updates, 10_000, 'an update on the resumed stream');

    // The second session resumes after its first event: the second, stored by the dead replica, is replayed.
    const resumed = await openStream(proxy.url, session, credential, first.id);
    const replayed = await resumed.next();
    expect(replayed).toEqual(second);
    expect(await callText(proxy.url, session, credential, 4, 'alpha__touch', { uri: UPDATED })).toBe('notified');
    const live = await resumed.next();
    expect(live.data).toEqual({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: UPDATED } });
    expect(live.id).not.toBe(second.id);
    resumed.cancel();
    expect((await fetch(`${other.base}/ready`)).status).toBe(200);
  });
});

describe.skipIf(!services)('one conflux process with CONFLUX_WORKERS=2', { timeout: scaled(60_000) }, () => {
  const prefix = `test-workers-${run}:`;
  let database: TestDatabase;
  let gateway: GatewayProcess | undefined;
  let proxy: RoundRobinProxy;

  beforeAll(async () => {
    database = await freshPostgres();
    gateway = await startGatewayProcess({
      config: await writeConfig(),
      env: { DATABASE_URL: database.url!, REDIS_URL: redisUrl(prefix), CONFLUX_WORKERS: '2' },
      listeners: 2,
      upstreams: 2,
    });
    // One target, a new connection per request: node:cluster hands connections to the workers in turn.
    proxy = await roundRobinProxy([gateway.url]);
  }, scaled(180_000));

  afterAll(async () => {
    try {
      await proxy?.close();
    } finally {
      try {
        await gateway?.stop();
      } finally {
        await database?.dispose();
        await deleteKeys(prefix);
      }
    }
  }, scaled(60_000));

  it('serves one SDK session from both workers', async () => {
    const workers = descendantsOf(gateway!.pid).filter((pid) => parentOf(pid) === gateway!.pid && commandOf(pid).includes(nodeScript('src/cli.ts')));
    expect(workers).toHaveLength(2);

    const peer = await connectPeer(proxy.url, await token('wendy'));
    try {
      await coreScenario(peer);
      // Each worker runs its own upstream process: the pid a call reports tells which worker served it.
      const upstreamPids = new Set<number>();
      await waitFor(async () => {
        upstreamPids.add(Number(textOf(await peer.client.callTool({ name: 'alpha__pid', arguments: {} }))));
        return upstreamPids.size === 2;
      }, 15_000, 'calls served by both workers');
      expect(new Set([...upstreamPids].map(parentOf))).toEqual(new Set(workers));
    } finally {
      await peer.close();
    }
  });

  it("answers /metrics with both workers' counts, whichever worker a scrape reaches", async () => {
    const healthChecks = () => `conflux_http_requests_total{route="/health",method="GET",status="200"}`;
    const counted = (text: string) => Number(text.split('\n').find((line) => line.startsWith(healthChecks()))?.split(' ')[1] ?? 0);
    const before = counted(await freshConnectionGet(`${gateway!.base}/metrics`));
    // Each on a new connection, which node:cluster hands to the workers in turn.
    for (let i = 0; i < 10; i++) expect((await freshConnectionGet(`${gateway!.base}/health`)).length).toBeGreaterThan(0);
    for (let scrape = 0; scrape < 4; scrape++) {
      const text = await freshConnectionGet(`${gateway!.base}/metrics`);
      expect(counted(text) - before).toBe(10);
      // A gauge is not added up: the one upstream is up (1) in both workers, not 2.
      expect(text).toContain('mcp_server_status{server_id="alpha"} 1\n');
      expect(text.match(/^conflux_build_info\{/gm)).toHaveLength(1);
    }
  });
});

/** The body of a GET on a connection of its own. */
function freshConnectionGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${response.statusCode}`))));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

describe.skipIf(!postgres)('one conflux process on its own memory, without Redis', { timeout: scaled(60_000) }, () => {
  let database: TestDatabase;
  let gateway: GatewayProcess | undefined;

  beforeAll(async () => {
    database = await freshPostgres();
    gateway = await startGatewayProcess({ config: await writeConfig(), env: { DATABASE_URL: database.url! } });
  }, scaled(180_000));

  afterAll(async () => {
    try {
      await gateway?.stop();
    } finally {
      await database?.dispose();
    }
  }, scaled(60_000));

  it('serves an SDK session', async () => {
    const peer = await connectPeer(gateway!.url, await token('mona'));
    try {
      await coreScenario(peer);
    } finally {
      await peer.close();
    }
    // Its sessions are in its own memory, which always answers: /ready does not report them, nor a Redis.
    const ready = (await (await fetch(`${gateway!.base}/ready`)).json()) as Record<string, unknown>;
    expect(ready).toMatchObject({ ready: true, database: 'ok' });
    expect(ready).not.toHaveProperty('sessions');
    expect(ready).not.toHaveProperty('redis');
  });
});

/** Stops every gateway, each whatever happens to the others; then throws the first failure. */
async function stopAll(gateways: GatewayProcess[]): Promise<void> {
  const failed = (await Promise.allSettled(gateways.map((g) => g.stop()))).find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** initialize (done by connecting), tools/list, tools/call and a call that asks the client for a sampling. */
async function coreScenario(peer: Peer): Promise<void> {
  expect((await peer.client.listTools()).tools.map((t) => t.name)).toEqual(expect.arrayContaining(['alpha__echo', 'alpha__ask_llm']));
  expect(textOf(await peer.client.callTool({ name: 'alpha__echo', arguments: { text: 'hello' } }))).toBe('alpha: hello');
  expect(textOf(await peer.client.callTool({ name: 'alpha__ask_llm', arguments: { question: 'why?' } }))).toMatch(/^alpha heard: \w+ answers why\?$/);
}

interface Peer {
  client: Client;
  sessionId: string;
  updates: string[];
  close(): Promise<void>;
}

/** The SDK client with a bearer token, declaring sampling (answered by its name), collecting resource updates. */
async function connectPeer(url: string, bearer: string): Promise<Peer> {
  const name = JSON.parse(Buffer.from(bearer.split('.')[1]!, 'base64url').toString()).sub.split('-')[0] as string;
  const client = new Client({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
  client.setRequestHandler('sampling/createMessage', async (request) => {
    const question = (request.params.messages[0]!.content as { text: string }).text;
    return { role: 'assistant', model: 'test', content: { type: 'text', text: `${name} answers ${question}` } };
  });
  const updates: string[] = [];
  client.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${bearer}` } } });
  await client.connect(transport);
  return {
    client,
    sessionId: transport.sessionId!,
    updates,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

function isCall(rpc: unknown, tool: string): boolean {
  const message = rpc as { method?: unknown; params?: { name?: unknown } } | undefined;
  return message?.method === 'tools/call' && message.params?.name === tool;
}

function isAnswer(rpc: unknown): boolean {
  return rpc !== null && typeof rpc === 'object' && 'result' in rpc && !('method' in rpc);
}

interface Hit {
  /** The index of the target that served the request. */
  target: number;
  method: string;
  session: string | undefined;
  lastEventId: string | undefined;
  rpc: unknown;
}

interface RoundRobinProxy {
  url: string;
  hits: Hit[];
  close(): Promise<void>;
}

/**
 * A load balancer without stickiness: each request goes to the next target in turn, over a new
 * connection, both bodies streamed. A target that refuses a connection is taken out and the
 * request sent to the next one (nothing of it reached the dead one); a target that dies while
 * answering cuts the client's response, as a real balancer would.
 */
async function roundRobinProxy(targets: string[]): Promise<RoundRobinProxy> {
  let turn = 0;
  const dead = new Set<number>();
  const hits: Hit[] = [];
  const nextTarget = () => {
    for (let tried = 0; tried < targets.length; tried++) {
      const index = turn++ % targets.length;
      if (!dead.has(index)) return index;
    }
    return undefined;
  };
  const server = createServer((req, res) => {
    const header = (name: string) => req.headers[name] as string | undefined;
    const hit: Hit = { target: -1, method: req.method!, session: header('mcp-session-id'), lastEventId: header('last-event-id'), rpc: undefined };
    hits.push(hit);
    const chunks: Buffer[] = [];
    let ended = false;
    let upstream: ClientRequest | undefined;
    const send = () => {
      const index = nextTarget();
      if (index === undefined) return void res.writeHead(502).end();
      hit.target = index;
      const target = new URL(targets[index]!);
      const request = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer: IncomingMessage) => {
        res.writeHead(answer.statusCode!, answer.headers);
        // An event stream may say nothing for a while: its client must see it open now.
        res.flushHeaders();
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('close', () => {
          if (!answer.complete) res.destroy();
        });
      });
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED' && !res.headersSent) {
          dead.add(index);
          return send();
        }
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      for (const chunk of chunks) request.write(chunk);
      if (ended) request.end();
      upstream = request;
    };
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      upstream?.write(chunk);
    });
    req.on('end', () => {
      ended = true;
      upstream?.end();
      try {
        hit.rpc = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        hit.rpc = undefined;
      }
    });
    res.on('close', () => upstream?.destroy());
    send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    hits,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function post(url: string, body: unknown, session: string, credential: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, ...credential, 'mcp-session-id': session, 'mcp-protocol-version': VERSION }, body: JSON.stringify(body) });
}

/** Opens a session (initialize, then initialized) and returns its id. */
async function initializeRaw(url: string, credential: Record<string, string>): Promise<string> {
  const init = await fetch(url, {
    method: 'POST',
    headers: { ...MCP_HEADERS, ...credential },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  expect(init.status).toBe(200);
  await init.body?.cancel();
  const id = init.headers.get('mcp-session-id')!;
  expect((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, id, credential)).status).toBe(202);
  return id;
}

/** A tool call's text, read from its SSE answer. */
async function callText(url: string, session: string, credential: Record<string, string>, id: number, name: string, args: Record<string, unknown>): Promise<string> {
  const response = await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, session, credential);
  expect(response.status).toBe(200);
  const answer = sseEvents(await response.text())
    .map((e) => JSON.parse(e.data) as { id?: unknown; result?: object })
    .find((m) => m.id === id);
  expect(answer).toHaveProperty('result');
  return textOf(answer!.result!);
}

/** The events of an SSE body (priming events, which carry no data, left out). */
function sseEvents(text: string): { id: string | undefined; data: string }[] {
  const events: { id: string | undefined; data: string }[] = [];
  for (const block of text.split('\n\n')) {
    const field = (name: string) => block.split('\n').find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
    const data = field('data');
    if (data) events.push({ id: field('id'), data });
  }
  return events;
}

/** A session's GET stream (resumed after `lastEventId` when given), read event by event. */
async function openStream(url: string, session: string, credential: Record<string, string>, lastEventId?: string) {
  const aborting = new AbortController();
  const response = await fetch(url, {
    signal: aborting.signal,
    headers: { accept: 'text/event-stream', ...credential, 'mcp-session-id': session, 'mcp-protocol-version': VERSION, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return {
    async next(): Promise<{ id: string | undefined; data: unknown }> {
      for (;;) {
        const boundary = buffer.indexOf('\n\n');
        if (boundary >= 0) {
          const [event] = sseEvents(buffer.slice(0, boundary + 2));
          buffer = buffer.slice(boundary + 2);
          if (event) return { id: event.id, data: JSON.parse(event.data) };
          continue;
        }
        const { done, value } = await reader.read();
        if (done) throw new Error('the stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    },
    /** Reads on until the stream ends, cleanly or not. */
    async ended(): Promise<void> {
      try {
        while (!(await reader.read()).done);
      } catch {
        // cut: what a killed server does
      }
    },
    /** Drops the stream. (Cancelling its reader instead waited, once in a while, past the test's timeout.) */
    cancel: () => aborting.abort(),
  };
}

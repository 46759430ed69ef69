import { Client, StreamableHTTPClientTransport, type ClientCapabilities } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { acceptedContent, createMcpHandler, inputRequired, McpServer, ProtocolError, ProtocolErrorCode, type CallToolResult } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ServerConfigSchema, type HttpServerConfig, type ReplicatedServerConfig } from '../../src/config/schema.js';
import { InMemoryEraVerdicts, replicaVerdictKey } from '../../src/upstream/era-verdicts.js';
import { ReplicatedServer } from '../../src/upstream/replicated-server.js';
import { replicaKeys } from '../../src/upstream/replica-tokens.js';
import { UpstreamTimeoutError } from '../../src/upstream/errors.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { startTasksServer, TASKS_EXTENSION, type TasksServer } from '../fixtures/tasks-server.js';
import { serveHandler } from '../fixtures/web-bridge.js';
import { startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';
import { directDeps } from '../helpers/upstream-deps.js';

/**
 * What one replica of a server with `urls` holds for its callers (a 2026 `input_required`
 * state, a task) goes back to that replica, from any gateway process; each replica keeps its
 * own protocol era; a 2026 subscription hands back the breaker probe it took.
 */

const ELICIT: ClientCapabilities = { elicitation: { form: {} } };
const TASKS: ClientCapabilities = { ...ELICIT, extensions: { [TASKS_EXTENSION]: {} } } as ClientCapabilities;
const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });
const askFor = (what: string) => inputRequired.elicit({ message: `${what}?`, requestedSchema: { type: 'object', properties: { [what]: { type: 'string' } }, required: [what] } });

interface Asker {
  url: string;
  /** `two_rounds` calls received, by the state they carried (`-` for none). */
  rounds(): string[];
  stop(): Promise<void>;
}

/**
 * A 2026-07-28 server that keeps what it asked in memory, as a stateful upstream does: its
 * `two_rounds` tool asks twice (`first`, then `second`), each time under a state only this
 * instance knows, and refuses a state it did not mint. `hang` answers when cancelled; the
 * resource `asker://readme` can be subscribed to.
 */
async function startAsker(label: string): Promise<Asker> {
  const states = new Map<string, { round: number; first?: string }>();
  const rounds: string[] = [];
  let minted = 0;
  const build = (): McpServer => {
    const server = new McpServer({ name: `asker-${label}`, version: '1.0.0' }, { capabilities: { tools: {}, resources: { subscribe: true } } });
    server.registerTool('echo', { description: 'Returns its text and who answered', inputSchema: z.object({ text: z.string() }) }, async ({ text: said }) => text(`${label}: ${said}`));
    server.registerTool('two_rounds', { description: 'Asks two questions, one round each' }, async (ctx) => {
      const state = ctx.mcpReq.requestState();
      rounds.push(typeof state === 'string' ? state : '-');
      const mint = (held: { round: number; first?: string }) => {
        const id = `${label}-${++minted}`;
        states.set(id, held);
        return id;
      };
      if (typeof state !== 'string') return inputRequired({ inputRequests: { first: askFor('first') }, requestState: mint({ round: 1 }) });
      const held = states.get(state);
      if (!held) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `${label} never minted requestState ${state}`);
      states.delete(state);
      if (held.round === 1) {
        const first = acceptedContent<{ first?: string }>(ctx.mcpReq.inputResponses, 'first')?.first ?? '?';
        return inputRequired({ inputRequests: { second: askFor('second') }, requestState: mint({ round: 2, first }) });
      }
      const second = acceptedContent<{ second?: string }>(ctx.mcpReq.inputResponses, 'second')?.second ?? '?';
      return text(`done on ${label}: ${held.first} then ${second}`);
    });
    server.registerTool('hang', { description: 'Answers once cancelled' }, async (ctx) => {
      await new Promise<void>((resolve) => {
        if (ctx.mcpReq.signal.aborted) resolve();
        ctx.mcpReq.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return text('cancelled');
    });
    server.registerResource('readme', 'asker://readme', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: `readme of ${label}` }] }));
    return server;
  };
  const served = await serveHandler(createMcpHandler(build, { legacy: 'reject' }), { label: `asker-${label}` });
  return { url: served.url, rounds: () => rounds, stop: () => served.close() };
}

interface RpcAnswer {
  result?: Record<string, unknown> & { resultType?: string; requestState?: string; taskId?: string; status?: string };
  error?: { code: number; message: string; data?: unknown };
}

let nextId = 1;

/** One raw 2026-07-28 request (envelope and standard headers, as the SDK client sends them); its JSON-RPC answer. */
async function raw(url: string, method: string, params: Record<string, unknown>, capabilities: ClientCapabilities = ELICIT): Promise<RpcAnswer> {
  const id = nextId++;
  const name = params.name ?? params.taskId;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: modernEnvelope(capabilities) } }),
  });
  const body = await response.text();
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) return JSON.parse(body) as RpcAnswer;
  const answers = body
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)) as RpcAnswer & { id?: number; method?: string })
    .filter((message) => message.id === id && message.method === undefined);
  return answers[answers.length - 1]!;
}

const accept = (key: string, value: string) => ({ [key]: { action: 'accept', content: { [key]: value } } });

/** The replica states of `server` as `/api/v1/servers` lists them. */
async function replicasReady(gateway: RunningGateway, server: string): Promise<boolean> {
  const response = await fetch(`${gateway.url.replace(/\/mcp$/, '')}/api/v1/servers`);
  const { servers } = (await response.json()) as { servers: { name: string; replicas?: { state: string }[] }[] };
  const replicas = servers.find((s) => s.name === server)?.replicas ?? [];
  return replicas.length > 0 && replicas.every((r) => r.state === 'ready');
}

const TAGGED = /^conflux\.replica\.[A-Za-z0-9_-]{8}\./;

describe('input_required rounds and tasks on a server with urls', () => {
  let a: Asker;
  let b: Asker;
  let t1: TasksServer;
  let t2: TasksServer;
  let l1: RunningUpstream;
  let l2: RunningUpstream;
  let gateway: RunningGateway;
  let second: RunningGateway;

  beforeAll(async () => {
    [a, b, t1, t2, l1, l2] = await Promise.all([
      startAsker('a'),
      startAsker('b'),
      startTasksServer({ label: 't1' }),
      startTasksServer({ label: 't2' }),
      startStreamableUpstream('l1'),
      startStreamableUpstream('l2'),
    ]);
    const config = testConfig({
      svc: { urls: [a.url, b.url], balance: { strategy: 'round_robin' } },
      jobs: { urls: [t1.url, t2.url], balance: { strategy: 'round_robin' } },
      legacy: { urls: [l1.url, l2.url], balance: { strategy: 'round_robin' } },
    });
    // Two gateway processes with one config, as behind a balancer without stickiness.
    [gateway, second] = await Promise.all([startGateway(config), startGateway(config)]);
    for (const g of [gateway, second]) {
      await waitFor(async () => (await replicasReady(g, 'svc')) && (await replicasReady(g, 'jobs')) && (await replicasReady(g, 'legacy')), 15_000, 'every replica ready');
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all([gateway?.stop(), second?.stop()]);
    await Promise.all([a?.stop(), b?.stop(), t1?.stop(), t2?.stop(), l1?.close(), l2?.close()]);
  });

  /** Which asker holds `state` (the upstream's own, after the tag), and the other. */
  const holderOf = (state: string) => {
    const own = state.replace(TAGGED, '');
    return own.startsWith('a-') ? { holder: a, label: 'a', other: b } : { holder: b, label: 'b', other: a };
  };

  it('sends every round of a call back to the replica that asked, the later states tagged too, whatever was balanced in between', async () => {
    const first = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {} });
    expect(first.result).toMatchObject({ resultType: 'input_required', inputRequests: { first: { method: 'elicitation/create' } } });
    const state1 = first.result!.requestState!;
    expect(state1).toMatch(TAGGED);
    const { holder, label, other } = holderOf(state1);
    const otherBefore = other.rounds().length;

    // A call in between moves the rotation on: an untagged retry would go to the other replica.
    expect(textOf((await raw(gateway.url, 'tools/call', { name: 'svc__echo', arguments: { text: 'between' } })).result!)).toMatch(/^[ab]: between$/);
    const round2 = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {}, inputResponses: accept('first', 'one'), requestState: state1 });
    expect(round2.result).toMatchObject({ resultType: 'input_required', inputRequests: { second: { method: 'elicitation/create' } } });
    const state2 = round2.result!.requestState!;
    expect(state2).toMatch(TAGGED);
    expect(state2.match(TAGGED)![0]).toBe(state1.match(TAGGED)![0]);

    await raw(gateway.url, 'tools/call', { name: 'svc__echo', arguments: { text: 'between again' } });
    const done = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {}, inputResponses: accept('second', 'two'), requestState: state2 });
    expect(done.error).toBeUndefined();
    expect(textOf(done.result!)).toBe(`done on ${label}: one then two`);
    // The replica read its own states, untagged; the other was never asked.
    expect(holder.rounds().slice(-3)).toEqual(['-', state1.replace(TAGGED, ''), state2.replace(TAGGED, '')]);
    expect(other.rounds().length).toBe(otherBefore);
  });

  it('routes a retry to the replica that asked from another gateway process, which never saw the first round', async () => {
    const first = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {} });
    const state1 = first.result!.requestState!;
    const { label } = holderOf(state1);
    // The second gateway's rotation starts at the first replica: make its next pick the other one.
    if (label === 'a') await raw(second.url, 'tools/call', { name: 'svc__echo', arguments: { text: 'turn' } });
    const round2 = await raw(second.url, 'tools/call', { name: 'svc__two_rounds', arguments: {}, inputResponses: accept('first', 'uno'), requestState: state1 });
    expect(round2.error).toBeUndefined();
    const done = await raw(second.url, 'tools/call', { name: 'svc__two_rounds', arguments: {}, inputResponses: accept('second', 'dos'), requestState: round2.result!.requestState });
    expect(textOf(done.result!)).toBe(`done on ${label}: uno then dos`);
  });

  it('leaves the gateway’s own paused-call state untagged: a 2025 replica asking mid-call is resumed by the gateway', async () => {
    const asked = await raw(gateway.url, 'tools/call', { name: 'legacy__ask_user', arguments: {} });
    expect(asked.result).toMatchObject({ resultType: 'input_required', inputRequests: { 'elicitation-1': { method: 'elicitation/create' } } });
    expect(asked.result!.requestState).toMatch(/^conflux\.paused\.v1\./);
    await raw(gateway.url, 'tools/call', { name: 'legacy__echo', arguments: { text: 'between' } });
    const done = await raw(gateway.url, 'tools/call', { name: 'legacy__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: asked.result!.requestState });
    expect(textOf(done.result!)).toMatch(/^l[12]: accept ann$/);
  });

  it('balances an untagged state, which the replica that did not mint it refuses', async () => {
    const first = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {} });
    const own = first.result!.requestState!.replace(TAGGED, '');
    const { label, other } = holderOf(first.result!.requestState!);
    const otherLabel = label === 'a' ? 'b' : 'a';
    // Untagged, the state goes where the rotation says; sent until it reaches the replica that did not mint it.
    let refused: RpcAnswer | undefined;
    for (let i = 0; i < 2 && !refused; i++) {
      const before = other.rounds().length;
      const answer = await raw(gateway.url, 'tools/call', { name: 'svc__two_rounds', arguments: {}, inputResponses: accept('first', 'x'), requestState: own });
      if (other.rounds().length > before) refused = answer;
    }
    expect(refused).toBeDefined();
    expect(JSON.stringify(refused)).toContain(`${otherLabel} never minted requestState ${own}`);
  });

  it('through a 2025 session: the SDK asks the client each round and retries with the tagged state, which reaches the replica that asked', async () => {
    const client = new LegacyClient({ name: 'legacy', version: '1.0.0' }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      const key = Object.keys((request.params as { requestedSchema: { properties: Record<string, unknown> } }).requestedSchema.properties)[0]!;
      return { action: 'accept', content: { [key]: `${key}-answer` } };
    });
    const transport = new LegacyTransport(new URL(gateway.url));
    await client.connect(transport);
    try {
      for (let i = 0; i < 2; i++) {
        const result = await client.callTool({ name: 'svc__two_rounds', arguments: {} });
        expect(textOf(result)).toMatch(/^done on [ab]: first-answer then second-answer$/);
      }
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });

  it('through the SDK v2 client on 2026-07-28, which answers every round itself', async () => {
    const client = new Client({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: ELICIT });
    client.setRequestHandler('elicitation/create', (async (request: { params: { requestedSchema: { properties: Record<string, unknown> } } }) => {
      const key = Object.keys(request.params.requestedSchema.properties)[0]!;
      return { action: 'accept', content: { [key]: key.toUpperCase() } };
    }) as never);
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
    try {
      const labels = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const answer = textOf(await client.callTool({ name: 'svc__two_rounds', arguments: {} }));
        expect(answer).toMatch(/^done on [ab]: FIRST then SECOND$/);
        labels.add(answer.slice('done on '.length, 'done on '.length + 1));
      }
      // Round robin started each call on another replica: both held a call, each to its end.
      expect(labels).toEqual(new Set(['a', 'b']));
    } finally {
      await client.close();
    }
  });

  it('keeps a task on the replica that created it after an input_required round, its polls balanced in between', async () => {
    const asked = await raw(gateway.url, 'tools/call', { name: 'jobs__test_tool_with_task', arguments: {} }, TASKS);
    expect(asked.result).toMatchObject({ resultType: 'input_required' });
    expect(asked.result!.requestState).toMatch(TAGGED);
    await raw(gateway.url, 'tools/call', { name: 'jobs__greet', arguments: { name: 'x' } }, TASKS);
    const handle = await raw(gateway.url, 'tools/call', { name: 'jobs__test_tool_with_task', arguments: {}, inputResponses: { user_name: { action: 'accept', content: { name: 'Ada' } } }, requestState: asked.result!.requestState }, TASKS);
    expect(handle.result).toMatchObject({ resultType: 'task' });
    const taskId = handle.result!.taskId!;
    expect(taskId).toMatch(/^task-/);
    expect(taskId).not.toMatch(TAGGED);
    const creator = t1.received().some((m) => m.method === 'tools/call' && m.params?.inputResponses !== undefined) ? 't1' : 't2';

    let task: RpcAnswer | undefined;
    await waitFor(
      async () => {
        // A synchronous call between polls moves the rotation on each time.
        await raw(gateway.url, 'tools/call', { name: 'jobs__greet', arguments: { name: 'y' } }, TASKS);
        task = await raw(gateway.url, 'tasks/get', { taskId }, TASKS);
        expect(task.error).toBeUndefined();
        return task.result?.status === 'completed';
      },
      15_000,
      'the task completed',
    );
    expect(task!.result).toMatchObject({ taskId, status: 'completed' });
    expect(textOf((task!.result as { result: object }).result)).toBe(`Hello, Ada! (from ${creator})`);
    // Each upstream read only ids it minted: tasks/get reached the creator alone, with its own id.
    const gets = (server: TasksServer) => server.received().filter((m) => m.method === 'tasks/get');
    const [held, notHeld] = creator === 't1' ? [t1, t2] : [t2, t1];
    expect(gets(held).length).toBeGreaterThan(0);
    expect(gets(held).every((m) => m.params?.taskId === gets(held)[0]!.params?.taskId && /^task-\d+$/.test(String(m.params?.taskId)))).toBe(true);
    expect(gets(notHeld)).toEqual([]);
  });
});

describe('each replica’s protocol era', () => {
  let modern: Asker;
  let legacy: RunningUpstream;

  beforeAll(async () => {
    [modern, legacy] = await Promise.all([startAsker('m'), startStreamableUpstream('legacy')]);
  });

  afterAll(async () => {
    await Promise.all([modern?.stop(), legacy?.close()]);
  });

  it('is remembered per replica (a rolling upgrade mixes eras), and forgotten with the server', async () => {
    const verdicts = new InMemoryEraVerdicts();
    const config = ServerConfigSchema.parse({ urls: [modern.url, legacy.url] }) as ReplicatedServerConfig;
    const server = new ReplicatedServer('svc', config, { connection: directDeps({ verdicts }), authFor: () => undefined, onChange: () => {} });
    server.start();
    try {
      await waitFor(() => server.status().replicas!.every((r) => r.state === 'ready'), 15_000, 'both replicas ready');
      const [modernKey, legacyKey] = replicaKeys([modern.url, legacy.url]);
      expect(verdicts.get(replicaVerdictKey('svc', modernKey!))?.verdict.kind).toBe('modern');
      expect(verdicts.get(replicaVerdictKey('svc', legacyKey!))?.verdict.kind).toBe('legacy');
      expect(verdicts.get('svc')).toBeUndefined();
      expect(server.status().replicas!.map((r) => r.state)).toEqual(['ready', 'ready']);
      // What the pool does when the server's definition changes.
      verdicts.delete('svc');
      expect(verdicts.get(replicaVerdictKey('svc', modernKey!))).toBeUndefined();
      expect(verdicts.get(replicaVerdictKey('svc', legacyKey!))).toBeUndefined();
    } finally {
      await server.stop();
    }
  });
});

describe('a 2026-07-28 subscription on a half-open breaker', () => {
  let asker: Asker;

  beforeAll(async () => {
    asker = await startAsker('s');
  });

  afterAll(async () => {
    await asker?.stop();
  });

  it('gives back the probe it took, so the next call is let through and closes the breaker', async () => {
    let now = 1_000_000;
    const config = ServerConfigSchema.parse({ url: asker.url }) as HttpServerConfig;
    // The first timeout opens the breaker, for a second.
    const health = { breaker: { failureThreshold: 1, cooldownMs: 1000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 };
    const connection = new UpstreamConnection('svc', config, directDeps({ now: () => now, health }));
    connection.start();
    try {
      await waitFor(() => connection.state === 'ready', 15_000, 'connected');
      await expect(connection.request('tools/call', { name: 'hang', arguments: {} }, { timeout: 100 })).rejects.toBeInstanceOf(UpstreamTimeoutError);
      expect(connection.breakerState).toBe('open');
      now += 1000;
      expect(connection.breakerState).toBe('half-open');
      expect(connection.takesRequests).toBe(true);

      await connection.request('resources/subscribe', { uri: 'asker://readme' });
      expect(connection.takesRequests).toBe(true);
      const echoed = await connection.request('tools/call', { name: 'echo', arguments: { text: 'after' } });
      expect(textOf(echoed)).toBe('s: after');
      expect(connection.breakerState).toBe('closed');
    } finally {
      await connection.stop();
    }
  });
});

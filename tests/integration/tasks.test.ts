import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createTaskSessionFromClient, type JsonRpcResponse } from '@modelcontextprotocol/ext-tasks/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { DEFAULT_TASK_TTL_MS, InMemoryTaskRouteStore, mintTaskId, routeExpiry, type TaskRoute } from '../../src/gateway/task-routes.js';
import { TaskStatusFeed } from '../../src/gateway/task-status.js';
import { declaresTasks, withoutLegacyTaskParam, type TaskFields } from '../../src/gateway/task-wire.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { startTasksServer, TASKS_EXTENSION, type TasksServer } from '../fixtures/tasks-server.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';

/**
 * The Tasks extension (SEP-2663) through the gateway: 2026-07-28 clients call tools of two
 * upstreams that answer with task handles (both minting `task-1`, `task-2`, ...), follow the
 * tasks by the ids the gateway hands out, and hear their status on listen streams. Two API
 * keys are two principals; each sees only its own tasks.
 */
const TASKS = { extensions: { [TASKS_EXTENSION]: {} } };

interface RpcAnswer {
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

/** A 2026-07-28 request as a client sends it (envelope, standard headers), answered JSON or SSE. */
async function rawModern(url: string, key: string, method: string, params: Record<string, unknown> = {}, capabilities: Record<string, unknown> = TASKS, who?: Record<string, string>): Promise<RpcAnswer> {
  const id = Math.floor(Math.random() * 1e9);
  const name = typeof params.name === 'string' ? params.name : typeof params.taskId === 'string' ? params.taskId : undefined;
  const envelope = modernEnvelope(capabilities);
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(name !== undefined && method !== 'subscriptions/listen' ? { 'mcp-name': name } : {}),
      ...(who ?? { 'x-api-key': key }),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: envelope } }),
  });
  const body = await response.text();
  const messages = response.headers.get('content-type')?.startsWith('text/event-stream')
    ? body
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>)
    : [JSON.parse(body) as Record<string, unknown>];
  const answer = messages.find((m) => m.id === id);
  if (!answer) throw new Error(`no answer to ${method}: ${body}`);
  return answer as RpcAnswer;
}

/** An open `subscriptions/listen` stream: every message it carried so far. */
async function listen(url: string, key: string, notifications: Record<string, unknown>): Promise<{ messages: Record<string, unknown>[]; ended: Promise<void>; close(): void }> {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    signal: abort.signal,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'subscriptions/listen',
      'x-api-key': key,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 'listen-1',
      method: 'subscriptions/listen',
      params: {
        notifications,
        _meta: modernEnvelope(TASKS),
      },
    }),
  });
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const messages: Record<string, unknown>[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    let buffered = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffered += decoder.decode(value, { stream: true });
        const frames = buffered.split('\n\n');
        buffered = frames.pop() ?? '';
        for (const frame of frames) {
          const data = frame.split('\n').find((line) => line.startsWith('data:'));
          if (data) messages.push(JSON.parse(data.slice(5)) as Record<string, unknown>);
        }
      }
    } catch {
      // Closed by the test.
    }
  })();
  return { messages, ended, close: () => abort.abort() };
}

const notificationsOf = (messages: readonly Record<string, unknown>[], method: string) =>
  messages.filter((m) => m.method === method).map((m) => m.params as Record<string, unknown>);

describe('tasks through the gateway (2026-07-28, two upstreams, two principals)', () => {
  let database: OpenedDatabase;
  let alpha: TasksServer;
  let beta: TasksServer;
  let gateway: RunningGateway;
  const keys = { a: '', b: '' };

  beforeAll(async () => {
    alpha = await startTasksServer({ label: 'alpha', failAfterMs: 200 });
    beta = await startTasksServer({ label: 'beta', failAfterMs: 200 });
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(
      testConfig(
        { alpha: { url: alpha.url }, beta: { url: beta.url } },
        { auth: { apiKeys: true }, access: { grants: [{ group: 'team', servers: ['alpha', 'beta'], level: 'call' }] } },
      ),
      { database },
    );
    keys.a = (await gateway.conflux.apiKeys!.create({ name: 'principal-a', groups: ['team'] })).key;
    keys.b = (await gateway.conflux.apiKeys!.create({ name: 'principal-b', groups: ['team'] })).key;
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await alpha?.stop();
    await beta?.stop();
  });

  const upstreamIdsOf = (server: TasksServer, method: string) =>
    server
      .received()
      .filter((m) => m.method === method)
      .map((m) => m.params?.taskId);

  it('gives each upstream task its own id, though both upstreams minted the same one, and routes by it', async () => {
    const onAlpha = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'alpha__slow_compute', arguments: { seconds: 60, label: 'a' } });
    const onBeta = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'beta__slow_compute', arguments: { seconds: 60, label: 'b' } });
    expect(onAlpha.result).toMatchObject({ resultType: 'task', status: 'working', ttlMs: 60_000, pollIntervalMs: 100 });
    expect(onBeta.result).toMatchObject({ resultType: 'task', status: 'working' });
    const alphaTask = onAlpha.result!.taskId as string;
    const betaTask = onBeta.result!.taskId as string;
    // Both upstreams minted task-1; the client sees two unrelated, unguessable ids.
    expect(alpha.statusOf('task-1')).toBe('working');
    expect(beta.statusOf('task-1')).toBe('working');
    expect(alphaTask).toMatch(/^task-[A-Za-z0-9_-]{22}$/);
    expect(betaTask).toMatch(/^task-[A-Za-z0-9_-]{22}$/);
    expect(alphaTask).not.toBe(betaTask);

    const got = await rawModern(gateway.url, keys.a, 'tasks/get', { taskId: betaTask });
    expect(got.result).toMatchObject({ taskId: betaTask, status: 'working', resultType: 'complete' });
    expect(upstreamIdsOf(beta, 'tasks/get')).toEqual(['task-1']);
    expect(upstreamIdsOf(alpha, 'tasks/get')).toEqual([]);

    // Cancelling one reaches its own upstream only.
    const cancelled = await rawModern(gateway.url, keys.a, 'tasks/cancel', { taskId: alphaTask });
    expect(cancelled.result).toMatchObject({ resultType: 'complete' });
    expect(cancelled.result).not.toHaveProperty('taskId');
    expect(alpha.statusOf('task-1')).toBe('cancelled');
    expect(beta.statusOf('task-1')).toBe('working');
    expect((await rawModern(gateway.url, keys.a, 'tasks/get', { taskId: alphaTask })).result).toMatchObject({ taskId: alphaTask, status: 'cancelled' });
    await rawModern(gateway.url, keys.a, 'tasks/cancel', { taskId: betaTask });
    expect(beta.statusOf('task-1')).toBe('cancelled');
  });

  it('runs a task to its result with the Tasks client (ext-tasks) over the SDK v2 client', async () => {
    const client = new Client({ name: 'ext-tasks-client', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: { 'x-api-key': keys.a } } }));
    // The SDK client cannot read a task handle: the Tasks client sends those requests itself.
    const rawDispatch = async (request: unknown): Promise<JsonRpcResponse> => {
      const { method, params } = request as { method: string; params: Record<string, unknown> };
      const { _meta, ...rest } = params;
      const answer = await rawModern(gateway.url, keys.a, method, rest, ((_meta as Record<string, unknown>)['io.modelcontextprotocol/clientCapabilities'] ?? {}) as Record<string, unknown>);
      return answer.error ? { kind: 'error', error: answer.error as never } : { kind: 'result', result: answer.result as never };
    };
    const session = createTaskSessionFromClient(client, {
      endpointId: 'conflux',
      rawDispatch,
      v2RequestFraming: { protocolVersion: '2026-07-28', clientInfo: { name: 'ext-tasks-client', version: '1.0.0' }, clientCapabilities: {} },
    });
    try {
      expect(client.getServerCapabilities()?.extensions).toEqual({ [TASKS_EXTENSION]: {} });
      const execution = await session.callTool('beta__slow_compute', { seconds: 0.2, label: 'ext' });
      expect(execution.kind).toBe('task');
      const { outcome } = await execution.settle();
      expect(outcome.status).toBe('completed');
      expect(textOf(outcome.status === 'completed' ? (outcome.result as object) : {})).toBe('computed ext on beta');

      const failing = await session.callTool('alpha__failing_job', {});
      const failed = (await failing.settle()).outcome;
      // A tool error is a completed task whose result is an error; a protocol error fails the task.
      expect(failed.status === 'completed' && (failed.result as { isError?: boolean }).isError).toBe(true);
      const crashing = await (await session.callTool('alpha__protocol_error_job', {})).settle();
      expect(crashing.outcome).toMatchObject({ status: 'failed' });
    } finally {
      await session.close();
      await client.close();
    }
  });

  it('relays tasks/update answers to the task that asked', async () => {
    const created = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'beta__confirm_delete', arguments: { filename: 'notes.txt' } });
    const taskId = created.result!.taskId as string;
    const asking = await rawModern(gateway.url, keys.a, 'tasks/get', { taskId });
    expect(asking.result).toMatchObject({ status: 'input_required' });
    const [question] = Object.keys(asking.result!.inputRequests as object);
    const updated = await rawModern(gateway.url, keys.a, 'tasks/update', { taskId, inputResponses: { [question!]: { action: 'accept', content: { confirm: true } } } });
    expect(updated.result).toMatchObject({ resultType: 'complete' });
    expect(updated.result).not.toHaveProperty('status');
    const done = await rawModern(gateway.url, keys.a, 'tasks/get', { taskId });
    expect(done.result).toMatchObject({ taskId, status: 'completed', result: { content: [{ type: 'text', text: 'deleted notes.txt on beta' }] } });
  });

  it("answers another principal's task id exactly as an id nobody minted, and never reaches its upstream", async () => {
    const created = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'alpha__slow_compute', arguments: { seconds: 60, label: 'private' } });
    const taskId = created.result!.taskId as string;
    const cancelsBefore = upstreamIdsOf(alpha, 'tasks/cancel').length;
    const getsBefore = upstreamIdsOf(alpha, 'tasks/get').length;
    const unknownId = 'task-0000000000000000000000';
    for (const [method, extra] of [
      ['tasks/get', {}],
      ['tasks/update', { inputResponses: {} }],
      ['tasks/cancel', {}],
    ] as const) {
      const theirs = await rawModern(gateway.url, keys.b, method, { taskId, ...extra });
      const nobodys = await rawModern(gateway.url, keys.b, method, { taskId: unknownId, ...extra });
      expect(theirs.result).toBeUndefined();
      expect(theirs.error).toEqual({ code: -32602, message: `Unknown task: "${taskId}"` });
      expect({ ...theirs.error, message: theirs.error!.message.replace(taskId, unknownId) }).toEqual(nobodys.error);
    }
    expect(upstreamIdsOf(alpha, 'tasks/cancel')).toHaveLength(cancelsBefore);
    expect(upstreamIdsOf(alpha, 'tasks/get')).toHaveLength(getsBefore);
    // The owner still has it.
    expect((await rawModern(gateway.url, keys.a, 'tasks/get', { taskId })).result).toMatchObject({ taskId, status: 'working' });
    await rawModern(gateway.url, keys.a, 'tasks/cancel', { taskId });
  });

  it('answers a task request whose client did not declare the extension with -32021 naming it', async () => {
    const answer = await rawModern(gateway.url, keys.a, 'tasks/get', { taskId: 'task-whatever' }, {});
    expect(answer.error).toMatchObject({ code: -32021, data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } } });
  });

  it('runs the call synchronously for a 2026 client that did not declare the extension, and for a 2025 session', async () => {
    const modern = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'alpha__slow_compute', arguments: { seconds: 0, label: 'sync' } }, {});
    expect(modern.result).toMatchObject({ resultType: 'complete', content: [{ type: 'text', text: 'computed sync on alpha' }] });
    expect(modern.result).not.toHaveProperty('taskId');
    // The 2025-11-25 experiment's `task` field is not passed on: Conflux does not relay those tasks.
    const hinted = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'alpha__greet', arguments: { name: 'Ada' }, task: { ttl: 60_000 } });
    expect(hinted.result).toMatchObject({ resultType: 'complete', content: [{ type: 'text', text: 'Hello, Ada!' }] });
    expect(alpha.received().filter((m) => m.method === 'tools/call').at(-1)?.params).not.toHaveProperty('task');

    const legacy = new LegacyClient({ name: 'legacy', version: '1.0.0' });
    const transport = new LegacyTransport(new URL(gateway.url), { requestInit: { headers: { 'x-api-key': keys.a } } });
    await legacy.connect(transport);
    try {
      expect(legacy.getServerCapabilities()).not.toHaveProperty('extensions');
      const result = await legacy.callTool({ name: 'beta__slow_compute', arguments: { seconds: 0, label: 'legacy' } });
      expect(textOf(result)).toBe('computed legacy on beta');
      // A tool that needs a task cannot run for a client that cannot follow one: the upstream's -32021
      // comes back as a tool error, the 2025 idiom for a refusal.
      const refused = await legacy.callTool({ name: 'beta__failing_job', arguments: {} });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toBe(`This tool needs a client that supports ${TASKS_EXTENSION}; this client did not declare it.`);
      // The 2025 session has no task methods.
      await expect(legacy.request({ method: 'tasks/get', params: { taskId: 'task-1' } } as never, {} as never)).rejects.toMatchObject({ code: -32601 });
    } finally {
      await transport.terminateSession().catch(() => {});
      await legacy.close();
    }
  });

  it("delivers status notifications to the owner's listen streams only", async () => {
    const created = await rawModern(gateway.url, keys.a, 'tools/call', { name: 'alpha__slow_compute', arguments: { seconds: 0.5, label: 'watched' } });
    const taskId = created.result!.taskId as string;
    const owner = await listen(gateway.url, keys.a, { toolsListChanged: true, taskIds: [taskId, 'task-0000000000000000000000'] });
    const stranger = await listen(gateway.url, keys.b, { taskIds: [taskId] });
    try {
      await waitFor(() => notificationsOf(owner.messages, 'notifications/tasks').some((n) => n.status === 'completed'), 15_000, 'the completed notification');
      const [ack] = notificationsOf(owner.messages, 'notifications/subscriptions/acknowledged');
      // Only the caller's own task is honored; an unknown id is simply left out.
      expect(ack).toEqual({ notifications: { toolsListChanged: true, taskIds: [taskId] }, _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-1' } });
      const heard = notificationsOf(owner.messages, 'notifications/tasks');
      expect(heard.every((n) => n.taskId === taskId)).toBe(true);
      expect(heard.at(-1)).toMatchObject({
        taskId,
        status: 'completed',
        result: { content: [{ type: 'text', text: 'computed watched on alpha' }] },
        _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-1' },
      });

      // The other principal's stream honored nothing, said so, and ended.
      await stranger.ended;
      expect(notificationsOf(stranger.messages, 'notifications/subscriptions/acknowledged')).toEqual([
        { notifications: {}, _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-1' } },
      ]);
      expect(notificationsOf(stranger.messages, 'notifications/tasks')).toEqual([]);
    } finally {
      owner.close();
      stranger.close();
    }
  });
});

describe('a task listen stream without its standard headers', () => {
  let alpha: TasksServer;
  let gateway: RunningGateway;

  beforeAll(async () => {
    alpha = await startTasksServer({ label: 'alpha' });
    gateway = await startGateway(testConfig({ alpha: { url: alpha.url } }, { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' } }));
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await alpha?.stop();
  });

  it('is refused as the SDK refuses any other listen: HTTP 400, -32020, naming the header, with the request id', async () => {
    const ann = { 'x-user-email': 'ann@example.com' };
    const created = await rawModernAs(gateway.url, ann, 'tools/call', { name: 'alpha__slow_compute', arguments: { seconds: 600, label: 'x' } });
    const taskId = created.result!.taskId as string;
    const listenWith = async (headers: Record<string, string>, notifications: Record<string, unknown>) => {
      const response = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...ann, ...headers },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 'listen-7',
          method: 'subscriptions/listen',
          params: {
            notifications,
            _meta: modernEnvelope(TASKS),
          },
        }),
      });
      return { status: response.status, type: response.headers.get('content-type'), body: (await response.json()) as Record<string, any> };
    };
    for (const notifications of [{ taskIds: [taskId] }, { toolsListChanged: true }]) {
      const noVersion = await listenWith({ 'mcp-method': 'subscriptions/listen' }, notifications);
      expect(noVersion.status).toBe(400);
      expect(noVersion.body).toMatchObject({ id: 'listen-7', error: { code: -32020, message: expect.stringContaining('the required MCP-Protocol-Version header is absent') } });
      const noMethod = await listenWith({ 'mcp-protocol-version': '2026-07-28' }, notifications);
      expect(noMethod.status).toBe(400);
      expect(noMethod.body).toMatchObject({ id: 'listen-7', error: { code: -32020, message: expect.stringContaining('the required Mcp-Method header is absent') } });
    }
  });
});

/** `rawModern` for a caller told by trusted headers rather than an API key. */
function rawModernAs(url: string, who: Record<string, string>, method: string, params: Record<string, unknown>): Promise<RpcAnswer> {
  return rawModern(url, '', method, params, TASKS, who);
}

describe('the task-id table and status feed', () => {
  afterEach(() => void vi.useRealTimers());

  const route = (expiresAt: number): TaskRoute => ({ server: 'alpha', upstreamTaskId: 'task-1', tool: 'slow_compute', owner: 'principal-a', expiresAt });

  it("forgets a route when its task's lifetime is over, or a day after creation when the upstream gave none", async () => {
    let now = 1_000;
    const store = new InMemoryTaskRouteStore(() => now);
    await store.put('kept', route(routeExpiry(5_000, now)));
    await store.put('forever', route(routeExpiry(null, now)));
    now = 5_999;
    expect(await store.get('kept')).toMatchObject({ server: 'alpha', upstreamTaskId: 'task-1' });
    now = 6_000;
    expect(await store.get('kept')).toBeUndefined();
    expect(store.size).toBe(1);
    now = 1_000 + DEFAULT_TASK_TTL_MS - 1;
    expect(await store.get('forever')).toBeDefined();
    now = 1_000 + DEFAULT_TASK_TTL_MS;
    expect(await store.get('forever')).toBeUndefined();
  });

  it('sweeps expired routes on writes once the table has grown, so it stays the size of the live tasks', async () => {
    let now = 0;
    const store = new InMemoryTaskRouteStore(() => now);
    for (let i = 0; i < 1000; i++) await store.put(`old-${i}`, route(10));
    now = 10;
    for (let i = 0; i < 100; i++) await store.put(`new-${i}`, route(1_000));
    expect(store.size).toBeLessThanOrEqual(100);
  });

  it('mints distinct opaque ids and reads the extension off declared capabilities', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => mintTaskId()));
    expect(ids.size).toBe(1000);
    expect(declaresTasks({ extensions: { [TASKS_EXTENSION]: {} } })).toBe(true);
    expect(declaresTasks({ extensions: { [TASKS_EXTENSION]: null } })).toBe(false);
    expect(declaresTasks({ extensions: { other: {} } })).toBe(false);
    expect(declaresTasks(undefined)).toBe(false);
    expect(withoutLegacyTaskParam({ name: 'x', task: { ttl: 1 } })).toEqual({ name: 'x' });
  });

  it('asks about a watched task at the interval it suggests, tells listeners what changed, and stops once it is finished', async () => {
    vi.useFakeTimers();
    const answers: TaskFields['status'][] = ['working', 'working', 'input_required', 'completed'];
    let asked = 0;
    const task = (status: TaskFields['status']): TaskFields => ({ taskId: 'gw-1', status, createdAt: 't0', lastUpdatedAt: `t${asked}`, ttlMs: 1000, pollIntervalMs: 500 });
    const feed = new TaskStatusFeed(async () => {
      const status = answers[Math.min(asked, answers.length - 1)]!;
      asked++;
      // The same status reported twice is one state (same lastUpdatedAt): not a change.
      return { ...task(status), lastUpdatedAt: status };
    }, silentLogger());
    const heard: string[] = [];
    const stop = feed.watch('gw-1', (t) => heard.push(t.status));
    await vi.advanceTimersByTimeAsync(0);
    expect(heard).toEqual(['working']);
    await vi.advanceTimersByTimeAsync(500);
    expect(asked).toBe(2);
    expect(heard).toEqual(['working']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(heard).toEqual(['working', 'input_required', 'completed']);
    await vi.advanceTimersByTimeAsync(5000);
    expect(asked).toBe(4);
    stop();
    expect(feed.size).toBe(0);
    feed.close();
  });
});

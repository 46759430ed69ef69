import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { SharedState } from '../../src/state/shared-state.js';
import { startTasksServer, TASKS_EXTENSION, type TasksServer } from '../fixtures/tasks-server.js';
import { stdioFixture, testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { modernEnvelope } from '../helpers/modern-envelope.js';
import { modernRequest, type ModernRequestOptions, type RpcMessage } from '../helpers/modern-request.js';
import { newRedis, redisAvailable, testSharedState } from '../helpers/redis.js';

/**
 * The 2026-07-28 state a client carries from one request to the next, served by replicas that
 * share one store with no sticky routing: a call paused on one replica (its upstream request is
 * a stream held there) is resumed by a retry landing on the other, and a task created through
 * one is followed and cancelled through the other. The same scenarios run on a MemoryHub (paused
 * calls only: task routes are shared through Redis) and on Redis.
 */

const ALL = { sampling: {}, elicitation: { form: {} }, roots: {} };
const TASKS = { extensions: { [TASKS_EXTENSION]: {} } };
const INVALID_STATE = { code: -32602, message: 'Invalid or expired requestState', data: { reason: 'invalid_request_state' } };
const who = (name: string) => ({ 'x-user-email': `${name}@example.com` });

interface Backend {
  /** A replica's state: views of one shared store. */
  state(): SharedState;
  /** What a replica is given besides its state (the Redis client and prefix, on Redis). */
  deps: { redis?: Redis; redisPrefix?: string };
  cleanup(): Promise<void>;
}

const memoryBackend = async (): Promise<Backend> => {
  const hub = new MemoryHub();
  return { state: () => new MemorySharedState(hub), deps: {}, cleanup: async () => {} };
};

const redisBackend = async (): Promise<Backend> => {
  const redis = newRedis();
  const keyPrefix = `test-modern-replicas-${randomUUID()}:`;
  return {
    state: () => testSharedState(redis, keyPrefix),
    deps: { redis, redisPrefix: keyPrefix },
    cleanup: async () => {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
};

describeReplicas('memory', memoryBackend, { tasks: false });
if (await redisAvailable()) describeReplicas('redis', redisBackend, { tasks: true });

interface LogLine {
  msg: string;
  holder?: string;
  reason?: string;
}

interface Replica {
  conflux: Conflux;
  url: string;
  /** What the replica logged (debug and up). */
  lines: LogLine[];
  stop(): Promise<void>;
}

async function startReplica(config: Config, state: SharedState, deps: Backend['deps']): Promise<Replica> {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const conflux = createConflux(config, { logger: pino({ level: 'debug' }, sink), state, ...deps });
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  await conflux.upstreams.settled(15_000);
  let stopped: Promise<void> | undefined;
  return { conflux, url, lines, stop: () => (stopped ??= conflux.stop()) };
}

/** One raw 2026-07-28 request as `ann` (unless told), declaring what a client may be asked mid-call; its JSON-RPC answer. */
const raw = async (url: string, method: string, params: Record<string, unknown>, options: ModernRequestOptions = {}): Promise<RpcMessage> =>
  (await modernRequest(url, method, params, { capabilities: ALL, headers: who('ann'), ...options })).answer;

const call = (url: string, params: Record<string, unknown>, options?: Parameters<typeof raw>[3]) => raw(url, 'tools/call', params, options);
const resultText = (answer: RpcMessage) => textOf(answer.result ?? {});

function describeReplicas(backend: string, shared: () => Promise<Backend>, { tasks }: { tasks: boolean }): void {
  describe(`2026-07-28 state across replicas (${backend})`, () => {
    let store: Backend;
    let tasksServer: TasksServer;
    let config: Config;
    let a: Replica;
    let b: Replica;
    const paused = (replica: Replica) => replica.conflux.inputRounds.paused;
    const askStatus = async (replica: Replica) => resultText(await call(replica.url, { name: 'alpha__ask_status', arguments: {} }));

    beforeAll(async () => {
      store = await shared();
      tasksServer = await startTasksServer({ label: 'jobs' });
      config = testConfig(
        { alpha: stdioFixture('alpha', { env: { ASK_TOOLS: '1' } }), jobs: { url: tasksServer.url } },
        { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' } },
      );
      [a, b] = await Promise.all([startReplica(config, store.state(), store.deps), startReplica(config, store.state(), store.deps)]);
    }, 60_000);
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await tasksServer?.stop();
      await store?.cleanup();
    });

    it('resumes a call paused on one replica with a retry that lands on the other, over every round', async () => {
      const asked = await call(a.url, { name: 'alpha__ask_llm', arguments: { question: 'how?' } });
      expect(asked.result).toMatchObject({ resultType: 'input_required', inputRequests: { 'sampling-1': { method: 'sampling/createMessage' } } });
      // The state names the replica holding the call.
      expect(asked.result?.requestState).toMatch(/^conflux\.paused\.v1\./);
      expect(asked.result?.requestState?.endsWith(`.${a.conflux.state.replicaId}`)).toBe(true);
      expect([paused(a), paused(b)]).toEqual([1, 0]);
      const answer = { role: 'assistant', model: 'm', content: { type: 'text', text: 'an answer from b' } };
      const done = await call(b.url, { name: 'alpha__ask_llm', arguments: { question: 'how?' }, inputResponses: { 'sampling-1': answer }, requestState: asked.result?.requestState });
      expect(done.result).toMatchObject({ resultType: 'complete' });
      expect(resultText(done)).toBe('alpha heard: an answer from b');
      expect([paused(a), paused(b)]).toEqual([0, 0]);

      // Two rounds: the second `input_required` comes back through b, still naming a; and so does the result.
      const first = await call(a.url, { name: 'alpha__ask_twice', arguments: {} });
      expect(Object.keys(first.result?.inputRequests ?? {})).toEqual(['elicitation-1']);
      const second = await call(b.url, { name: 'alpha__ask_twice', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: first.result?.requestState });
      expect(second.result).toMatchObject({ resultType: 'input_required', inputRequests: { 'sampling-2': { method: 'sampling/createMessage' } } });
      expect(second.result?.requestState?.endsWith(`.${a.conflux.state.replicaId}`)).toBe(true);
      expect(paused(a)).toBe(1);
      const reply = { role: 'assistant', model: 'm', content: { type: 'text', text: 'hello ann' } };
      const third = await call(b.url, { name: 'alpha__ask_twice', arguments: {}, inputResponses: { 'sampling-2': reply }, requestState: second.result?.requestState });
      expect(resultText(third)).toBe('alpha asked twice: accept ann; hello ann');
      expect(paused(a)).toBe(0);
    });

    it("refuses, on the holder, a retry carrying another principal's state, and leaves the call to its owner", async () => {
      const asked = await call(a.url, { name: 'alpha__ask_user', arguments: {} });
      const state = asked.result!.requestState!;
      const theirs = await call(b.url, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'bob' } } }, requestState: state }, { headers: who('bob') });
      expect(theirs.result).toBeUndefined();
      expect(theirs.error).toEqual(INVALID_STATE);
      // A state pointed at another replica is refused there: it was sealed with a's key, naming a.
      const repointed = state.slice(0, state.lastIndexOf('.') + 1) + b.conflux.state.replicaId;
      const forged = await call(b.url, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: repointed });
      expect(forged.error).toEqual(INVALID_STATE);
      expect(paused(a)).toBe(1);
      const mine = await call(b.url, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: state });
      expect(resultText(mine)).toBe('alpha: accept ann');
      expect(paused(a)).toBe(0);
    });

    it('cancels the call on its holder when the client of a forwarded retry goes away', async () => {
      const asked = await call(a.url, { name: 'alpha__ask_then_work', arguments: {} });
      const leaving = new AbortController();
      const retry = call(
        b.url,
        { name: 'alpha__ask_then_work', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: asked.result?.requestState },
        { signal: leaving.signal },
      ).catch((error: unknown) => error);
      await waitFor(async () => (await askStatus(a)) === 'working after accept ann', 10_000, 'the upstream on a to take the answer given to b');
      leaving.abort();
      await retry;
      await waitFor(async () => (await askStatus(a)) === 'cancelled while working after accept ann', 10_000, 'the upstream call on a to be cancelled');
      expect(paused(a)).toBe(0);
    });

    it('answers a retry for a call whose replica has stopped as an unknown state, without waiting for it', async () => {
      const c = await startReplica(config, store.state(), store.deps);
      let asked: RpcMessage;
      try {
        asked = await call(c.url, { name: 'alpha__ask_user', arguments: {} });
        expect(paused(c)).toBe(1);
      } finally {
        await c.stop();
      }
      const retry = await call(b.url, { name: 'alpha__ask_user', arguments: {}, inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } }, requestState: asked.result?.requestState });
      expect(retry.error).toEqual(INVALID_STATE);
      // b did not wait for the holder to go quiet: the bus said at once that nobody was there.
      const gaveUp = b.lines.filter((l) => l.msg === 'a retry named a paused call whose replica cannot resume it');
      expect(gaveUp).toEqual([expect.objectContaining({ holder: c.conflux.state.replicaId, reason: `replica ${c.conflux.state.replicaId} is not on the bus` })]);
    });

    if (tasks) describe('tasks', () => {
      const taskCall = (url: string, method: string, params: Record<string, unknown>, name = 'ann') => raw(url, method, params, { capabilities: TASKS, headers: who(name) });

      it('reads a task created through one replica, and its result, through the other', async () => {
        const created = await taskCall(a.url, 'tools/call', { name: 'jobs__slow_compute', arguments: { seconds: 0.3, label: 'shared' } });
        expect(created.result).toMatchObject({ resultType: 'task', status: 'working' });
        const taskId = created.result!.taskId as string;
        let task: RpcMessage | undefined;
        await waitFor(async () => {
          task = await taskCall(b.url, 'tasks/get', { taskId });
          return task.result?.status === 'completed';
        }, 15_000, 'the task to complete, read through b');
        expect(task!.result).toMatchObject({ taskId, status: 'completed', result: { content: [{ type: 'text', text: 'computed shared on jobs' }] } });
        // Through either replica, the task is still only its owner's.
        expect((await taskCall(b.url, 'tasks/get', { taskId }, 'bob')).error).toEqual({ code: -32602, message: `Unknown task: "${taskId}"` });
      });

      it('cancels a task created through one replica through the other', async () => {
        const created = await taskCall(a.url, 'tools/call', { name: 'jobs__slow_compute', arguments: { seconds: 60, label: 'long' } });
        const taskId = created.result!.taskId as string;
        const cancelled = await taskCall(b.url, 'tasks/cancel', { taskId });
        expect(cancelled.result).toMatchObject({ resultType: 'complete' });
        // b sent the cancellation to the upstream itself, under the upstream's own id.
        const upstreamId = tasksServer.received().filter((m) => m.method === 'tasks/cancel').at(-1)?.params?.taskId;
        expect(upstreamId).toMatch(/^task-\d+$/);
        expect(tasksServer.statusOf(upstreamId as string)).toBe('cancelled');
        expect((await taskCall(a.url, 'tasks/get', { taskId })).result).toMatchObject({ taskId, status: 'cancelled' });
      });

      it('streams the status of a task created through one replica on a listen stream opened on the other', async () => {
        const created = await taskCall(a.url, 'tools/call', { name: 'jobs__slow_compute', arguments: { seconds: 0.5, label: 'heard' } });
        const taskId = created.result!.taskId as string;
        const abort = new AbortController();
        const response = await fetch(b.url, {
          method: 'POST',
          signal: abort.signal,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen', ...who('ann') },
          body: JSON.stringify({ jsonrpc: '2.0', id: 'listen-1', method: 'subscriptions/listen', params: { notifications: { taskIds: [taskId] }, _meta: modernEnvelope(TASKS) } }),
        });
        const messages: RpcMessage[] = [];
        const reading = (async () => {
          const decoder = new TextDecoder();
          let buffered = '';
          try {
            for await (const chunk of response.body!) {
              buffered += decoder.decode(chunk as Uint8Array, { stream: true });
              const frames = buffered.split('\n\n');
              buffered = frames.pop() ?? '';
              for (const frame of frames) {
                const data = frame.split('\n').find((line) => line.startsWith('data:'));
                if (data) messages.push(JSON.parse(data.slice(5)) as RpcMessage);
              }
            }
          } catch {
            // Closed by the test.
          }
        })();
        try {
          const statuses = () => messages.filter((m) => m.method === 'notifications/tasks').map((m) => m.params?.status);
          await waitFor(() => statuses().includes('completed'), 15_000, 'the completion to be heard on b');
          expect(messages[0]).toMatchObject({ method: 'notifications/subscriptions/acknowledged', params: { notifications: { taskIds: [taskId] } } });
          expect(messages.find((m) => m.params?.status === 'completed')?.params).toMatchObject({ taskId, result: { content: [{ type: 'text', text: 'computed heard on jobs' }] } });
        } finally {
          abort.abort();
          await reading;
        }
      });
    });
  });
}

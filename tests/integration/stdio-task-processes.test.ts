import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { TASKS_EXTENSION } from '../fixtures/tasks-server.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { modernRequest, type RpcMessage } from '../helpers/modern-request.js';
import { scaled } from '../helpers/load-scale.js';
import { newRedis, redisAvailable, testSharedState } from '../helpers/redis.js';

/**
 * A task lives in the stdio process that created it. Task ids are a counter in the fixture
 * (`task-1`, ...), so every process of the same server mints the same ids for different
 * people's tasks: a task request must reach the process that created the task, or be told the
 * task is unknown, never be answered with whatever another process holds under that id. Two
 * gateway processes each run the server (`processes: per_worker`) and share task routes in Redis.
 */

const TASKS = { extensions: { [TASKS_EXTENSION]: {} } };
const who = (name: string) => ({ 'x-user-email': `${name}@example.com` });
const unknown = (taskId: string) => ({ code: -32602, message: `Unknown task: "${taskId}"` });

const jobs = {
  command: process.execPath,
  args: [...nodeArgs('tests/fixtures/tasks-server.ts'), '--stdio', '--label', 'jobs'],
};

function startReplica(config: Config, redis: Redis, keyPrefix: string): Promise<RunningGateway> {
  return startGateway(config, {
    state: testSharedState(redis, keyPrefix),
    redis,
    redisPrefix: keyPrefix,
    // A busy machine may start the server slower than the 2026 probe waits: it is then retried.
    until: async (conflux) => {
      try {
        await waitFor(() => conflux.upstreams.get('jobs')?.state === 'ready', 60_000, 'the jobs server to be ready');
      } catch (error) {
        // What it was doing instead says why.
        throw new Error(`${(error as Error).message}; its status: ${JSON.stringify(conflux.upstreams.get('jobs')?.status())}`, { cause: error });
      }
    },
  });
}

const taskCall = async (url: string, method: string, params: Record<string, unknown>, name: string): Promise<RpcMessage> =>
  (await modernRequest(url, method, params, { capabilities: TASKS, headers: who(name) })).answer;

/** Starts a job as `name` through `url`; its gateway task id. */
async function startJob(url: string, name: string, seconds = 0.2): Promise<string> {
  const created = await taskCall(url, 'tools/call', { name: 'jobs__slow_compute', arguments: { seconds, label: `${name}-job` } }, name);
  expect(created.result).toMatchObject({ resultType: 'task', status: 'working' });
  return created.result!.taskId as string;
}

/** The finished task as `name` reads it through `url`. */
async function finished(url: string, taskId: string, name: string): Promise<RpcMessage> {
  let task: RpcMessage | undefined;
  await waitFor(
    async () => {
      task = await taskCall(url, 'tasks/get', { taskId }, name);
      return task.error !== undefined || task.result?.status === 'completed';
    },
    20_000,
    `task ${taskId} to finish`,
  );
  return task!;
}

if (await redisAvailable()) {
  describe('tasks of a stdio server each gateway process runs', () => {
    let redis: Redis;
    const keyPrefix = `test-stdio-tasks-${randomUUID()}:`;
    let config: Config;
    let a: RunningGateway;
    let b: RunningGateway;

    beforeAll(async () => {
      redis = newRedis();
      config = testConfig({ jobs }, { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' } });
      [a, b] = await Promise.all([startReplica(config, redis, keyPrefix), startReplica(config, redis, keyPrefix)]);
    }, scaled(180_000));
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    });

    it("reads each person's task through either gateway process from the process that created it", async () => {
      // Both processes mint the same id for these two tasks.
      const annTask = await startJob(a.url, 'ann');
      const bobTask = await startJob(b.url, 'bob');
      const annThroughB = await finished(b.url, annTask, 'ann');
      expect(textOf((annThroughB.result!.result ?? {}) as Record<string, unknown>)).toBe('computed ann-job on jobs');
      expect(annThroughB.result).toMatchObject({ taskId: annTask, status: 'completed' });
      const bobThroughA = await finished(a.url, bobTask, 'bob');
      expect(textOf((bobThroughA.result!.result ?? {}) as Record<string, unknown>)).toBe('computed bob-job on jobs');
      // Still only its owner's, wherever it is asked.
      expect((await taskCall(a.url, 'tasks/get', { taskId: annTask }, 'bob')).error).toEqual(unknown(annTask));
      expect((await taskCall(b.url, 'tasks/get', { taskId: annTask }, 'bob')).error).toEqual(unknown(annTask));
    });

    it('cancels through one gateway process a task held by the other', async () => {
      const taskId = await startJob(a.url, 'ann', 30);
      const cancelled = await taskCall(b.url, 'tasks/cancel', { taskId }, 'ann');
      expect(cancelled.error).toBeUndefined();
      expect((await taskCall(a.url, 'tasks/get', { taskId }, 'ann')).result).toMatchObject({ taskId, status: 'cancelled' });
    });

    it('forgets the tasks of a process that was restarted, though its successor mints the same ids', async () => {
      const before = await startJob(a.url, 'ann', 30);
      await a.conflux.upstreams.restart('jobs');
      await waitFor(() => a.conflux.upstreams.get('jobs')?.state === 'ready', 60_000, 'the restarted jobs server to be ready');
      // The new process starts counting again: bob's task gets the id ann's had there.
      const after = await startJob(a.url, 'bob', 30);
      expect(after).not.toBe(before);
      expect((await taskCall(a.url, 'tasks/get', { taskId: before }, 'ann')).error).toEqual(unknown(before));
      expect((await taskCall(b.url, 'tasks/get', { taskId: before }, 'ann')).error).toEqual(unknown(before));
      expect((await taskCall(a.url, 'tasks/get', { taskId: after }, 'bob')).result).toMatchObject({ taskId: after, status: 'working' });
      expect((await taskCall(a.url, 'tasks/cancel', { taskId: after }, 'bob')).error).toBeUndefined();
    });

    it('answers unknown task for a task whose gateway process has stopped', async () => {
      const extra = await startReplica(config, redis, keyPrefix);
      let taskId: string;
      try {
        taskId = await startJob(extra.url, 'ann', 30);
      } finally {
        await extra.stop();
      }
      expect((await taskCall(b.url, 'tasks/get', { taskId }, 'ann')).error).toEqual(unknown(taskId));
    });
  });
}

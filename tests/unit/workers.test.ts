import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuLimit, DEFAULT_RESTARTS, poolSizePerWorker, RestartBudget, usableCpus, workerCount, type RestartSettings } from '../../src/workers.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { isAlive, ROOT, waitFor } from '../helpers/gateway.js';

describe('how many workers', () => {
  it('takes the setting, the environment over it, and auto as the CPUs the process may use', () => {
    expect(workerCount(3, undefined)).toBe(3);
    expect(workerCount(3, '5')).toBe(5);
    expect(workerCount('auto', undefined, () => 2)).toBe(2);
    expect(workerCount(1, 'auto', () => 6)).toBe(6);
    for (const bad of ['0', '257', '1.5', 'many']) expect(workerCount(1, bad)).toBeInstanceOf(Error);
  });

  it('reads a cgroup v2 CPU quota as whole CPUs, at least one', () => {
    expect(cgroupCpuLimit('max 100000\n')).toBeUndefined();
    expect(cgroupCpuLimit('200000 100000\n')).toBe(2);
    expect(cgroupCpuLimit('150000 100000')).toBe(1);
    expect(cgroupCpuLimit('50000 100000\n')).toBe(1);
    expect(cgroupCpuLimit('800000 200000\n')).toBe(4);
    for (const unreadable of ['', 'garbage', '0 100000', '100000 0', '-1 100000']) expect(cgroupCpuLimit(unreadable)).toBeUndefined();
  });

  it('takes the smaller of the cores and the quota; the cores alone without a cgroup v2 limit', () => {
    const cores = availableParallelism();
    expect(usableCpus(() => '100000 100000\n')).toBe(1);
    expect(usableCpus(() => `${(cores + 8) * 100000} 100000\n`)).toBe(cores);
    expect(usableCpus(() => 'max 100000\n')).toBe(cores);
    expect(
      usableCpus(() => {
        throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      }),
    ).toBe(cores);
  });

  it('shares one process worth of database connections among the workers, at least two each', () => {
    expect(poolSizePerWorker(1, 10)).toBe(10);
    expect(poolSizePerWorker(2, 10)).toBe(5);
    expect(poolSizePerWorker(3, 10)).toBe(3);
    expect(poolSizePerWorker(4, 10)).toBe(2);
    expect(poolSizePerWorker(16, 10)).toBe(2);
  });
});

describe('the restart budget of a worker', () => {
  const early = 1000;
  const late = DEFAULT_RESTARTS.earlyMs;

  it('waits longer after each death as it starts, 1 s doubling to 30 s, and gives up after eight in a row', () => {
    const budget = new RestartBudget();
    const pauses = Array.from({ length: 8 }, () => budget.died(early));
    expect(pauses).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 'give-up']);
  });

  it('restarts at once a worker that had started, and such a death ends a streak of early ones', () => {
    const budget = new RestartBudget();
    expect([budget.died(early), budget.died(early), budget.died(early)]).toEqual([1000, 2000, 4000]);
    expect(budget.died(late)).toBe(0);
    expect(budget.died(early)).toBe(1000);
  });

  it('never gives up on crashes spread over time, however many', () => {
    const budget = new RestartBudget();
    const pauses = Array.from({ length: 200 }, () => budget.died(late + 1));
    expect(new Set(pauses)).toEqual(new Set([0]));
  });
});

const FIXTURE = join(ROOT, 'tests/fixtures/cluster-primary.ts');

interface Primary {
  child: ChildProcess;
  /** Workers by id, as the primary reported them. */
  workers: Map<number, { pid: number; online: boolean; ready: boolean; exit?: { code: number | null; signal: string | null } }>;
  stderr: () => string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

const primaries: ChildProcess[] = [];
afterEach(() => {
  for (const child of primaries.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A real cluster primary running `runPrimary` over the fixture's workers. */
function startPrimary(options: { count: number; restarts?: RestartSettings; errorOnOnline?: boolean }, modes: string): Primary {
  const child = spawn(process.execPath, [...nodeArgs(FIXTURE), JSON.stringify({ graceMs: 5000, ...options })], {
    cwd: ROOT,
    env: { ...process.env, WORKER_MODES: modes },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  primaries.push(child);
  const workers: Primary['workers'] = new Map();
  let stderr = '';
  let pending = '';
  child.stdout!.on('data', (chunk) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const event = JSON.parse(line) as { forked?: number; online?: number; ready?: number; exited?: number; id: number; code?: number | null; signal?: string | null };
      if (event.forked !== undefined) workers.set(event.id, { pid: event.forked, online: false, ready: false });
      if (event.online !== undefined) workers.get(event.id)!.online = true;
      if (event.ready !== undefined) workers.get(event.id)!.ready = true;
      if (event.exited !== undefined) workers.get(event.id)!.exit = { code: event.code ?? null, signal: event.signal ?? null };
    }
  });
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, workers, stderr: () => stderr, exited };
}

/** Waits for `check`, failing at once if the primary exits meanwhile. */
async function whileRunning(primary: Primary, check: () => boolean, what: string): Promise<void> {
  await waitFor(
    () => {
      if (primary.child.exitCode !== null || primary.child.signalCode !== null) throw new Error(`the primary exited (${primary.child.exitCode ?? primary.child.signalCode}) before ${what}:\n${primary.stderr()}`);
      return check();
    },
    30_000,
    what,
  );
}

const pidsOf = (primary: Primary) => [...primary.workers.values()].map((w) => w.pid);
/** Every one of `count` workers running its code, signal handling included. */
const allReady = (primary: Primary, count: number) => primary.workers.size === count && [...primary.workers.values()].every((w) => w.ready);

describe('the cluster primary', { timeout: 60_000 }, () => {
  it('stops cleanly at SIGTERM, a worker killed by the SIGTERM it was sent counting as stopped', async () => {
    const primary = startPrimary({ count: 2 }, '1:steady,2:unhandled');
    await whileRunning(primary, () => allReady(primary, 2), 'both workers ready');
    primary.child.kill('SIGTERM');
    expect(await primary.exited).toEqual([0, null]);
    expect(primary.workers.get(1)!.exit).toEqual({ code: 0, signal: null });
    expect(primary.workers.get(2)!.exit).toEqual({ code: null, signal: 'SIGTERM' });
    expect(pidsOf(primary).filter(isAlive)).toEqual([]);
  });

  it('replaces a worker that crashes after starting as often as it does, the others serving on', async () => {
    // Workers 2 to 10 crash once started, one after another; from 11 on they stay.
    const crashing = Array.from({ length: 9 }, (_, i) => `${i + 2}:crash-later`).join(',');
    const restarts: RestartSettings = { earlyMs: 50, firstDelayMs: 10, maxDelayMs: 40, giveUpAfter: 2 };
    const primary = startPrimary({ count: 2, restarts }, `1:steady,${crashing},*:steady`);
    await whileRunning(primary, () => primary.workers.get(11)?.ready === true, 'the eleventh worker ready');
    const first = primary.workers.get(1)!;
    expect(first.exit).toBeUndefined();
    expect(isAlive(first.pid)).toBe(true);
    for (let id = 2; id <= 10; id++) expect(primary.workers.get(id)!.exit).toEqual({ code: 1, signal: null });
    primary.child.kill('SIGTERM');
    expect(await primary.exited).toEqual([0, null]);
    expect(primary.workers.size).toBe(11);
    expect(pidsOf(primary).filter(isAlive)).toEqual([]);
  });

  it('gives up on a worker that dies as it starts, so many times in a row, and stops the others', async () => {
    const restarts: RestartSettings = { earlyMs: 60_000, firstDelayMs: 10, maxDelayMs: 40, giveUpAfter: 3 };
    const primary = startPrimary({ count: 2, restarts }, '1:steady,*:crash');
    expect(await primary.exited).toEqual([1, null]);
    // Worker 1, and three tries at the other: the first and two restarts.
    expect([...primary.workers.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    // Stopped by the primary: by its handler, or by the signal itself if it came before the handler.
    expect([JSON.stringify({ code: 0, signal: null }), JSON.stringify({ code: null, signal: 'SIGTERM' })]).toContain(JSON.stringify(primary.workers.get(1)!.exit));
    expect(primary.stderr()).toContain('a worker keeps exiting as it starts; stopping');
    expect(pidsOf(primary).filter(isAlive)).toEqual([]);
  });

  it('outlives an error reported for a worker process (a failed kill), and still stops cleanly', async () => {
    const primary = startPrimary({ count: 2, errorOnOnline: true }, '*:steady');
    await whileRunning(primary, () => allReady(primary, 2) && (primary.stderr().match(/worker process error/g) ?? []).length === 2, 'both errors reported');
    expect(primary.stderr()).toContain('kill EPERM (worker 1)');
    primary.child.kill('SIGTERM');
    expect(await primary.exited).toEqual([0, null]);
    expect(pidsOf(primary).filter(isAlive)).toEqual([]);
  });
});

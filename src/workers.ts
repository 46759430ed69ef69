import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';

/** Where cgroup v2 states the CPU time the process's group may use: `<quota> <period>`, or `max <period>`. */
const CGROUP_CPU_MAX = '/sys/fs/cgroup/cpu.max';

/**
 * How many processes serve the port: the setting, `CONFLUX_WORKERS` over it; `auto` is one per
 * CPU the process may use (`usableCpus`).
 */
export function workerCount(setting: number | 'auto', override: string | undefined, cpus: () => number = usableCpus): number | Error {
  const value = override ?? setting;
  if (value === 'auto') return cpus();
  const count = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 256) return new Error(`CONFLUX_WORKERS must be a whole number from 1 to 256, or "auto" (got "${String(value)}")`);
  return count;
}

/**
 * The CPUs this process may keep busy: the cores it may run on, or fewer when a cgroup v2 quota
 * (a container's CPU limit) allows less. Node 20's `availableParallelism()` counts cores only,
 * so a container limited to one CPU on a 64-core host would start 64 workers to share it.
 */
export function usableCpus(readCpuMax: () => string = () => readFileSync(CGROUP_CPU_MAX, 'utf8')): number {
  const cores = availableParallelism();
  let text: string;
  try {
    text = readCpuMax();
  } catch {
    return cores; // no cgroup v2 (another OS, cgroup v1): the cores are all there is to know
  }
  return Math.min(cores, cgroupCpuLimit(text) ?? cores);
}

/** Whole CPUs a cgroup v2 `cpu.max` allows (at least one), or undefined when it sets no limit or cannot be read. */
export function cgroupCpuLimit(cpuMax: string): number | undefined {
  const match = /^(\d+)\s+(\d+)\s*$/.exec(cpuMax.trim());
  if (!match) return undefined; // `max <period>`: no quota
  const [quota, period] = [Number(match[1]), Number(match[2])];
  if (!(quota > 0 && period > 0)) return undefined;
  return Math.max(1, Math.floor(quota / period));
}

/**
 * The PostgreSQL connections each of `workers` processes may open, sharing what one process
 * would have (`total`): the database's connection limit is the same whatever the worker count.
 * At least 2, what a migration needs (its lock on one, its work on another).
 */
export function poolSizePerWorker(workers: number, total: number): number {
  return Math.max(2, Math.floor(total / Math.max(1, workers)));
}

/**
 * Why several workers cannot run with this environment, if they cannot. Workers are replicas
 * on one host: each holds sessions the others must be able to serve (Redis), and each opens
 * the registry (the embedded database admits one process).
 */
export function workersRefused(count: number, env: { redisUrl: string | undefined; databaseUrl: string | undefined }): string | undefined {
  if (count <= 1) return undefined;
  const missing = [env.redisUrl ? undefined : 'REDIS_URL (sessions shared between workers)', env.databaseUrl ? undefined : 'DATABASE_URL (the embedded database admits one process)'].filter(Boolean);
  return missing.length ? `${count} workers need ${missing.join(' and ')}; set them or run one worker` : undefined;
}

export interface RestartSettings {
  /** A worker that dies sooner than this after its fork died starting (bad config, a database it cannot reach). */
  earlyMs: number;
  /** The pause before restarting a worker that died starting; doubled after each such death in a row. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** Early deaths in a row of one worker after which the primary stops every worker and exits 1. */
  giveUpAfter: number;
}

/**
 * A worker that lived half a minute started; from 1 s to 30 s between its restarts, eight
 * early deaths in a row take about a minute and a half: long enough to outlast a database or a
 * Redis coming up at the same time, short enough for an orchestrator to see the failure.
 */
export const DEFAULT_RESTARTS: RestartSettings = { earlyMs: 30_000, firstDelayMs: 1000, maxDelayMs: 30_000, giveUpAfter: 8 };

/**
 * The restarts of one worker (each replacement takes its predecessor's place). Only deaths
 * soon after a fork count, and only in a row: a worker that crashes now and then after serving
 * a while is replaced at once, however often that happens over time, and never stops the others.
 */
export class RestartBudget {
  readonly #settings: RestartSettings;
  #earlyInARow = 0;

  constructor(settings: RestartSettings = DEFAULT_RESTARTS) {
    this.#settings = settings;
  }

  /** After this worker died `livedMs` after its fork: the pause before the next one, or `'give-up'`. */
  died(livedMs: number): number | 'give-up' {
    const { earlyMs, firstDelayMs, maxDelayMs, giveUpAfter } = this.#settings;
    if (livedMs >= earlyMs) {
      this.#earlyInARow = 0;
      return 0;
    }
    this.#earlyInARow++;
    if (this.#earlyInARow >= giveUpAfter) return 'give-up';
    return Math.min(maxDelayMs, firstDelayMs * 2 ** (this.#earlyInARow - 1));
  }
}

/** How long the primary waits for workers to finish after a signal, beyond their own grace period. */
const EXTRA_STOP_MS = 5_000;

/**
 * The primary process of `gateway.workers > 1`: forks the workers (each a whole gateway on the
 * same port, which node:cluster shares), replaces one that dies (`RestartBudget`), and on
 * SIGTERM/SIGINT asks each to stop and waits for them. Resolves with the exit code: 0 after a
 * clean stop (a worker that exits 0, or by the SIGTERM sent to it), 1 when a worker keeps dying
 * as it starts or the workers do not stop in time.
 */
export function runPrimary(count: number, logger: Logger, graceMs: number, restarts: RestartSettings = DEFAULT_RESTARTS): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    let failed = false;
    const live = new Set<Worker>();
    /** Workers this primary sent SIGTERM: dying by it is how they stop when they had no time to handle it. */
    const terminated = new WeakSet<Worker>();
    const pendingRestarts = new Set<NodeJS.Timeout>();

    const start = (budget: RestartBudget) => {
      if (stopping) return;
      const forkedAt = Date.now();
      let worker: Worker;
      try {
        worker = cluster.fork();
      } catch (error) {
        // Out of processes or descriptors: as a worker that died at once, retried after a pause.
        logger.error({ err: (error as Error).message }, 'cannot start a worker');
        died(budget, 0);
        return;
      }
      live.add(worker);
      let ended = false;
      const exited = (code: number | null, signal: string | null) => {
        if (ended) return;
        ended = true;
        live.delete(worker);
        if (stopping) {
          if (code !== 0 && !(signal === 'SIGTERM' && terminated.has(worker))) failed = true;
          if (live.size === 0) finish();
          return;
        }
        logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'a worker exited');
        died(budget, Date.now() - forkedAt);
      };
      // A failed spawn or kill is reported here; unheard, it would end the primary and orphan the workers.
      worker.on('error', (error: Error) => {
        logger.error({ worker: worker.id, err: error.message }, 'worker process error');
        if (worker.process.pid === undefined) exited(null, null); // never started: no 'exit' to wait for
      });
      worker.once('exit', exited);
    };

    const died = (budget: RestartBudget, livedMs: number) => {
      const pause = budget.died(livedMs);
      if (pause === 'give-up') {
        logger.fatal({ earlyDeaths: restarts.giveUpAfter }, 'a worker keeps exiting as it starts; stopping');
        failed = true;
        stop();
        return;
      }
      if (pause === 0) return start(budget);
      logger.warn({ pauseMs: pause }, 'a worker exited as it started; starting another after a pause');
      const timer = setTimeout(() => {
        pendingRestarts.delete(timer);
        start(budget);
      }, pause);
      pendingRestarts.add(timer);
    };

    let deadline: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(deadline);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(failed ? 1 : 0);
    };
    const stop = () => {
      stopping = true;
      for (const timer of pendingRestarts) clearTimeout(timer);
      pendingRestarts.clear();
      if (live.size === 0) return finish();
      for (const worker of live) {
        terminated.add(worker);
        worker.process.kill('SIGTERM');
      }
      deadline = setTimeout(() => {
        logger.error({ workers: live.size }, 'workers did not stop in time; killing them');
        failed = true;
        for (const worker of live) worker.process.kill('SIGKILL');
      }, graceMs + EXTRA_STOP_MS);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      logger.info({ signal, workers: live.size }, 'stopping the workers');
      stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    logger.info({ workers: count }, 'starting workers');
    for (let i = 0; i < count; i++) start(new RestartBudget(restarts));
  });
}

export const isWorker = (): boolean => cluster.isWorker;

/** This worker's number (1, 2, …; a replacement gets the next one), 0 outside a cluster. */
export const workerId = (): number => cluster.worker?.id ?? 0;

import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';

/** How many processes serve the port: the setting, `CONFLUX_WORKERS` over it; `auto` is one per core. */
export function workerCount(setting: number | 'auto', override: string | undefined): number | Error {
  const value = override ?? setting;
  if (value === 'auto') return availableParallelism();
  const count = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 256) return new Error(`CONFLUX_WORKERS must be a whole number from 1 to 256, or "auto" (got "${String(value)}")`);
  return count;
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

/** A worker that dies this soon after starting counts against the restart budget. */
const RESTARTS_PER_MINUTE = 5;
/** How long the primary waits for workers to finish after a signal, beyond their own grace period. */
const EXTRA_STOP_MS = 5_000;

/**
 * The primary process of `gateway.workers > 1`: forks the workers (each a whole gateway on the
 * same port, which node:cluster shares), replaces one that dies, and on SIGTERM/SIGINT asks
 * each to stop and waits for them. Resolves with the exit code: 0 after a clean stop, 1 when
 * workers keep dying (more than five restarts in a minute) or do not stop in time.
 */
export function runPrimary(count: number, logger: Logger, graceMs: number): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    let failed = false;
    const restarts: number[] = [];
    const live = new Set<Worker>();
    const fork = () => {
      const worker = cluster.fork();
      live.add(worker);
      worker.once('exit', (code, signal) => {
        live.delete(worker);
        if (stopping) {
          if (code !== 0) failed = true;
          if (live.size === 0) finish();
          return;
        }
        logger.error({ worker: worker.id, code, signal }, 'a worker exited; starting another');
        const now = Date.now();
        restarts.push(now);
        while (restarts[0]! < now - 60_000) restarts.shift();
        if (restarts.length > RESTARTS_PER_MINUTE) {
          logger.fatal({ restarts: restarts.length }, 'workers keep exiting; stopping');
          failed = true;
          stop();
          return;
        }
        fork();
      });
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
      if (live.size === 0) return finish();
      for (const worker of live) worker.process.kill('SIGTERM');
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
    for (let i = 0; i < count; i++) fork();
  });
}

export const isWorker = (): boolean => cluster.isWorker;

import cluster from 'node:cluster';
import type { Logger } from 'pino';

/** What SIGHUP reloads: the gateway's config file (see `Conflux.reloadConfig`). */
export interface ConfigReloader {
  reloadConfig(reason: string): Promise<unknown>;
}

/**
 * Makes SIGHUP reload the config file, as daemons do, instead of its default action: ending
 * the process without a word. The reload logs its own outcome. Returns the uninstall.
 */
export function reloadOnSighup(gateway: ConfigReloader, logger: Logger): () => void {
  const onSignal = () => {
    logger.info({ signal: 'SIGHUP' }, 'reload (SIGHUP)');
    gateway.reloadConfig('SIGHUP').then(
      (result) => {
        if (result === undefined) logger.info({ signal: 'SIGHUP' }, 'no config file is watched yet; an edit is applied once the gateway has started');
      },
      (error: unknown) => logger.error({ err: error }, 'config reload (SIGHUP) failed'),
    );
  };
  process.on('SIGHUP', onSignal);
  return () => process.off('SIGHUP', onSignal);
}

/**
 * The primary process of `gateway.workers > 1` serves nothing itself: SIGHUP is passed on to
 * each worker, which reloads its own config, and no longer ends the primary (and, with it, the
 * workers). Returns the uninstall.
 */
export function forwardSighupToWorkers(logger: Logger): () => void {
  const onSignal = () => {
    const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker !== undefined);
    logger.info({ signal: 'SIGHUP', workers: workers.length }, 'reload (SIGHUP): passed on to every worker');
    for (const worker of workers) worker.process.kill('SIGHUP');
  };
  process.on('SIGHUP', onSignal);
  return () => process.off('SIGHUP', onSignal);
}

/**
 * `conflux serve`: the gateway, its database, Redis and, with several workers, the primary that
 * runs them. Loaded only by that command (src/cli.ts); the gateway's own modules only where a
 * gateway runs, not in the primary.
 */

import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { EXIT_USAGE } from './cli-help.js';
import type { Environment } from './config/env.js';
import type { Config } from './config/schema.js';
import type { Conflux } from './conflux.js';
import { PortUnavailableError, reservePort, type PortReservation } from './http/port-reservation.js';
import { withTimeout } from './limits/with-timeout.js';
import { bestEffort } from './observability/best-effort.js';
import { serveClusterMetrics, WorkerMetrics } from './observability/cluster-metrics.js';
import { createLogger, type LoggerOptions } from './observability/logger.js';
import { forwardSighupToWorkers, reloadOnSighup } from './reload-signal.js';
import { createSharedState } from './state/create-shared-state.js';
import { connectBudgetMs, describeAuth, describeDatabase, describeUpstreams } from './startup-report.js';
import { DataDirLockedError, localUrlOf } from './store/data-dir-lock.js';
import { DEFAULT_POOL_SIZE, openDatabase, type DatabaseOptions, type OpenedDatabase } from './store/database.js';
import { workerId, isWorker, poolSizePerWorker, runPrimary, workerCount, workersRefused } from './workers.js';

/** The config file in use, and the `.env` file read with it. */
export interface ConfigFile {
  path: string;
  envFile: string | undefined;
}

interface ServeOptions {
  config: Config;
  configFile: ConfigFile;
  env: Environment;
  logging: LoggerOptions;
  hostOption: string | undefined;
  portOption: string | undefined;
}

export async function serve({ config, configFile, env, logging, hostOption, portOption }: ServeOptions): Promise<number> {
  // Workers log side by side on one stream: each line says which one wrote it.
  const logger = createLogger(env.logLevel, { ...logging, labels: isWorker() ? { worker: workerId(), pid: process.pid } : {} });
  const host = hostOption ?? env.host ?? config.gateway.host;
  const port = Number(portOption ?? env.port ?? config.gateway.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`invalid port "${portOption ?? env.port}"\n`);
    return EXIT_USAGE;
  }
  const workers = workerCount(config.gateway.workers, env.workers);
  if (workers instanceof Error) {
    process.stderr.write(`${workers.message}\n`);
    return EXIT_USAGE;
  }
  if (!isWorker()) {
    const path = resolve(configFile.path);
    logger.info({ config: path, envFile: configFile.envFile }, `config ${path}${configFile.envFile ? ` (with variables from ${configFile.envFile})` : ''}`);
    const auth = describeAuth(config.gateway.auth);
    logger.info({ auth }, `auth: ${auth}`);
  }
  // Heard before anything starts: a signal while starting (a worker waiting behind another
  // replica's migration) stops what was started so far, instead of killing the process outright.
  const stop = new StopRequest();
  let reservation: PortReservation | undefined;
  try {
    // Held from now until the gateway listens, so a port in use is said before anything slow
    // starts. A worker's port is the primary's.
    if (!isWorker()) reservation = await reservePort(host, port);
    return await serveUntilStopped(stop, { config, configFile, env, logger, host, port, workers, reservation });
  } catch (error) {
    if (!(error instanceof PortUnavailableError)) throw error;
    logger.fatal({ host, port }, error.message);
    return 1;
  } finally {
    await reservation?.release();
    stop.dispose();
  }
}

interface Serving {
  config: Config;
  configFile: ConfigFile;
  env: Environment;
  logger: Logger;
  host: string;
  port: number;
  workers: number;
  /** The port, held until the gateway's listener takes it. */
  reservation: PortReservation | undefined;
}

async function serveUntilStopped(stop: StopRequest, { config, configFile, env, logger, host, port, workers, reservation }: Serving): Promise<number> {
  const databaseOptions: DatabaseOptions = {
    url: env.databaseUrl,
    dataDir: join(env.dataDir, 'pgdata'),
    // The database admits as many connections whatever the worker count: the workers share them.
    poolSize: workers > 1 ? poolSizePerWorker(workers, DEFAULT_POOL_SIZE) : undefined,
    logger,
    progress: (line) => logger.info(line),
  };
  if (workers > 1 && !isWorker()) {
    const refused = workersRefused(workers, env);
    if (refused) {
      logger.fatal(refused);
      return 1;
    }
    // Once here, so that the workers starting together do not race to migrate.
    let migrated: OpenedDatabase | 'stopped';
    try {
      migrated = await openMigrated({ ...databaseOptions, poolSize: 2 }, stop, logger);
    } catch (error) {
      logger.fatal({ err: (error as Error).message }, `cannot migrate the database: ${(error as Error).message}`);
      return 1;
    }
    if (migrated === 'stopped') return 0;
    await migrated.close();
    stop.dispose(); // the primary hears signals from here on
    await reservation?.release(); // the workers' listeners take it
    forwardSighupToWorkers(logger);
    const stopServingMetrics = serveClusterMetrics(logger.child({ component: 'metrics' }));
    try {
      return await runPrimary(workers, logger, config.gateway.shutdownGraceSeconds * 1000);
    } finally {
      stopServingMetrics();
    }
  }
  let database: OpenedDatabase;
  try {
    const opened = await openMigrated(databaseOptions, stop, logger);
    if (opened === 'stopped') return 0;
    database = opened;
  } catch (error) {
    if (error instanceof DataDirLockedError) logger.fatal({ dataDir: error.dataDir, pid: error.holder.pid }, error.message);
    else logger.fatal({ err: (error as Error).message }, `cannot open the database: ${(error as Error).message}`);
    return 1;
  }
  logger.info({ database: database.kind }, `database ready: ${describeDatabase(env.databaseUrl, join(env.dataDir, 'pgdata'))}`);
  const redis = env.redisUrl ? new Redis(env.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 }) : undefined;
  // The rate limiter logs Redis going down and coming back once each; every reconnect attempt
  // errors, so this listener (which keeps ioredis from reporting unhandled errors) stays quiet.
  redis?.on('error', (error) => logger.debug({ err: error.message }, 'redis error'));
  // Sessions, messages between replicas and resumable events: in Redis when there is one.
  const state = createSharedState(redis, { keyPrefix: env.redisPrefix, logger: logger.child({ component: 'shared-state' }) });
  // The gateway's modules, loaded once there is a gateway to run: a primary of workers never runs one.
  const { createConflux } = await import('./conflux.js');
  const conflux = createConflux(config, { logger, database, redis, redisPrefix: env.redisPrefix, state, configFile: { path: configFile.path, env: env.variables } });
  reloadOnSighup(conflux, logger);
  installCrashHandlers(logger);
  // A scrape reaches one worker: it answers with every worker's metrics.
  if (isWorker()) {
    const workerMetrics = new WorkerMetrics(conflux.metrics.registry, logger.child({ component: 'metrics' }));
    conflux.metrics.scrapeWith(() => workerMetrics.scrape());
  }
  await conflux.start();
  if (stop.signal === undefined) {
    let url: string;
    let boundPort: number;
    try {
      await reservation?.release();
      ({ url, port: boundPort } = await conflux.listen(host, port));
    } catch (error) {
      logger.fatal({ err: (error as Error).message }, `cannot listen on ${host}:${port}`);
      await conflux.stop();
      await database.close();
      await closeRedis(redis);
      return 1;
    }
    // CLI commands run meanwhile reach the embedded database through this gateway's admin API.
    await database.dataDirLock?.advertise(localUrlOf(host, boundPort)).catch((error: unknown) => {
      logger.warn({ err: (error as Error).message, lockFile: database.dataDirLock?.path }, 'cannot record the admin URL in the data folder lock: "conflux keys" and "access" cannot reach this gateway');
    });
    logger.info({ url, servers: Object.keys(config.servers).length }, `Conflux listening on ${url}`);
    void reportUpstreams(conflux, connectBudgetMs(Object.values(config.servers)), stop, logger);
  }

  const signal = await stop.requested;
  logger.info({ signal }, 'shutting down');
  try {
    await conflux.stop();
    await database.close();
    await closeRedis(redis);
    return 0;
  } catch (error) {
    logger.error({ err: (error as Error).message }, 'error during shutdown');
    return 1;
  }
}

/** "N/N upstreams ready", or which are not and why, once they settle: serving does not wait for it. */
async function reportUpstreams(conflux: Conflux, budgetMs: number, stop: StopRequest, logger: Logger): Promise<void> {
  await conflux.upstreams.settled(budgetMs);
  if (stop.signal !== undefined) return;
  const statuses = conflux.upstreams.statuses().filter((s) => s.state !== 'disabled');
  const ready = statuses.filter((s) => s.state === 'ready').length;
  const line = describeUpstreams(statuses);
  if (ready === statuses.length) logger.info({ ready, upstreams: statuses.length }, line);
  else logger.warn({ ready, upstreams: statuses.length }, line);
}

/**
 * SIGTERM and SIGINT, heard from when it is made until `dispose()`. Later signals are ignored
 * rather than left to their default action, which would cut the stop short.
 */
class StopRequest {
  readonly requested: Promise<NodeJS.Signals>;
  signal: NodeJS.Signals | undefined;
  readonly #onSignal: (signal: NodeJS.Signals) => void;

  constructor() {
    let heard!: (signal: NodeJS.Signals) => void;
    this.requested = new Promise((resolve) => (heard = resolve));
    this.#onSignal = (signal) => {
      this.signal ??= signal;
      heard(this.signal);
    };
    process.on('SIGTERM', this.#onSignal);
    process.on('SIGINT', this.#onSignal);
  }

  dispose(): void {
    process.off('SIGTERM', this.#onSignal);
    process.off('SIGINT', this.#onSignal);
  }
}

/**
 * The database, opened and migrated, or `'stopped'` when a signal came first: what was opened is
 * closed then, which also ends a migration still waiting for another replica's lock. A database
 * whose migration fails is closed before the failure is thrown.
 */
async function openMigrated(options: DatabaseOptions, stop: StopRequest, logger: Logger): Promise<OpenedDatabase | 'stopped'> {
  const opening = openDatabase(options);
  const migrated = opening.then(async (database) => {
    try {
      await database.migrate();
    } catch (error) {
      // After a signal, the database closing is why it failed, and closing is the stop's to do.
      if (stop.signal === undefined) await bestEffort(() => database.close(), logger, 'close the database after a failed start');
      throw error;
    }
    return database;
  });
  const outcome = await Promise.race([migrated, stop.requested.then(() => 'stopped' as const)]);
  if (outcome !== 'stopped') return outcome;
  logger.info({ signal: stop.signal }, 'stopped while starting');
  migrated.catch(() => {}); // it fails as its database closes under it
  // A stopped start fails with nothing more to do than note it: there is then no database to close.
  const database = await opening.catch((error: unknown) => void logger.debug({ err: error }, 'the database of a stopped start did not open'));
  await bestEffort(async () => database?.close(), logger, 'close the database of a start that was stopped');
  return 'stopped';
}

/** Redis asked to close politely, then cut: a hung Redis never answers QUIT, and shutdown must end. */
async function closeRedis(redis: Redis | undefined): Promise<void> {
  if (!redis) return;
  await withTimeout(redis.quit(), 1000).catch(() => redis.disconnect());
}

/** A crash still ends through process 'exit', where child processes are killed. */
function installCrashHandlers(logger: Logger): void {
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection');
  });
}

#!/usr/bin/env node
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { gatewayToolCall } from './admin-api-client.js';
import { ADMIN_TOKEN_VARIABLE, adminCommand, table } from './admin-commands.js';
import { commandUsage, globalUsage } from './cli-help.js';
import { ENV_FILE_OPTION_REFUSED, EnvFileError, environmentWithEnvFile } from './config/dotenv.js';
import { DEFAULT_CONFIG_FILE, SAMPLE_CONFIG_FILE, defaultConfigFile } from './config/default-config-file.js';
import { EnvironmentError, LOG_FORMATS, oneOf, readEnvironment, type Environment } from './config/env.js';
import { ConfigError, readConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import type { Conflux } from './conflux.js';
import { forwardSighupToWorkers, reloadOnSighup } from './reload-signal.js';
import { PortUnavailableError, reservePort, type PortReservation } from './http/port-reservation.js';
import { createLogger, type LoggerOptions } from './observability/logger.js';
import { connectBudgetMs, describeAuth, describeDatabase, describeUpstreams, settleWithProgress } from './startup-report.js';
import { DataDirLockedError, localUrlOf } from './store/data-dir-lock.js';
import { DEFAULT_POOL_SIZE, openDatabase, type DatabaseOptions, type OpenedDatabase } from './store/database.js';
import { DatabaseUnavailableError } from './store/database-errors.js';
import { GATEWAY_VERSION } from './version.js';
import { Redis } from 'ioredis';
import { bestEffort } from './observability/best-effort.js';
import { withTimeout } from './limits/with-timeout.js';
import { createSharedState } from './state/create-shared-state.js';
import { serveClusterMetrics, WorkerMetrics } from './observability/cluster-metrics.js';
import { workerId, isWorker, poolSizePerWorker, runPrimary, workerCount, workersRefused } from './workers.js';

const EXIT_USAGE = 2;

function parseCommandLine(argv: string[]) {
  const parsed = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string', short: 'H' },
      port: { type: 'string', short: 'p' },
      args: { type: 'string', short: 'a' },
      json: { type: 'boolean' },
      group: { type: 'string', multiple: true },
      subject: { type: 'string' },
      expires: { type: 'string' },
      user: { type: 'string' },
      server: { type: 'string' },
      level: { type: 'string' },
      allow: { type: 'string' },
      deny: { type: 'string' },
      'admin-token': { type: 'string' },
      dotenv: { type: 'string' },
      'env-file': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (parsed.values['env-file'] !== undefined) throw new Error(ENV_FILE_OPTION_REFUSED);
  return parsed;
}

/** One run of a command, once its environment and config file are read. */
interface Invocation {
  command: string;
  rest: string[];
  values: ReturnType<typeof parseCommandLine>['values'];
  env: Environment;
  logging: LoggerOptions;
  config: Config;
  configFile: ConfigFile;
}

/** The config file in use, and the `.env` file read with it. */
interface ConfigFile {
  path: string;
  envFile: string | undefined;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${globalUsage()}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`conflux ${GATEWAY_VERSION}\n`);
    return 0;
  }
  const [command = 'serve', ...rest] = positionals;
  if (values.help || command === 'help') {
    // `conflux keys --help` and `conflux help keys` alike; `conflux --help` lists every command.
    const topic = command === 'help' ? rest[0] : positionals.length > 0 ? command : undefined;
    const usage = topic === undefined ? globalUsage() : commandUsage(topic);
    if (usage === undefined) return unknownCommand(topic!);
    process.stdout.write(usage);
    return 0;
  }
  if (commandUsage(command) === undefined) return unknownCommand(command);
  const logFormat = values['log-format'] === undefined ? undefined : oneOf(values['log-format'], LOG_FORMATS);
  if (values['log-format'] !== undefined && logFormat === undefined) {
    process.stderr.write(`--log-format must be one of ${LOG_FORMATS.join(', ')} (got "${values['log-format']}")\n`);
    return EXIT_USAGE;
  }

  // Variables from .env first, under the real environment: everything below reads the result.
  let env: Environment;
  let envFile: string | undefined;
  try {
    const loaded = environmentWithEnvFile(values.dotenv);
    envFile = loaded.file;
    env = readEnvironment(loaded.variables);
  } catch (error) {
    if (!(error instanceof EnvironmentError || error instanceof EnvFileError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return EXIT_USAGE;
  }
  const logging: LoggerOptions = { format: logFormat ?? env.logFormat, terminal: process.stderr.isTTY === true };
  // `validate` of a missing file fails (a CI step in the wrong folder, say); the others fall back to the package's sample.
  const configPath = values.config ?? env.configPath ?? (command === 'validate' ? DEFAULT_CONFIG_FILE : defaultConfigFile());
  if (configPath === SAMPLE_CONFIG_FILE && (values.config ?? env.configPath) === undefined) process.stderr.write(`no ${DEFAULT_CONFIG_FILE} in this folder: using the sample ${SAMPLE_CONFIG_FILE}\n`);

  let config: Config;
  try {
    // validate refuses a stdio server that cannot start; the other commands warn and start the rest.
    const loaded = await readConfigFile(configPath, env.variables, { commands: command === 'validate' ? 'error' : 'warn' });
    for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
    config = loaded.config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }

  try {
    return await runCommand({ command, rest, values, env, logging, config, configFile: { path: configPath, envFile } });
  } catch (error) {
    // The database's root cause is the whole story for whoever set DATABASE_URL: no stack.
    if (!(error instanceof DatabaseUnavailableError)) throw error;
    process.stderr.write(`${command}: ${error.message}\n`);
    return 1;
  }
}

async function runCommand({ command, rest, values, env, logging, config, configFile }: Invocation): Promise<number> {
  const configPath = configFile.path;
  switch (command) {
    case 'validate':
      process.stdout.write(`${configPath}: valid (${Object.keys(config.servers).length} servers)\n`);
      return 0;
    case 'serve':
      return serve({ config, configFile, env, logging, hostOption: values.host, portOption: values.port });
    case 'migrate':
      return migrateCommand(env);
    case 'keys':
    case 'access':
    case 'connections':
      return adminCommand(command, rest, { ...values, adminToken: values['admin-token'] }, env, { access: config.gateway.access, servers: Object.keys(config.servers) }, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'tools':
      return withUpstreams(config, env, logging, async (conflux) => {
        const tools = conflux.catalog.current.tools;
        if (values.json) process.stdout.write(`${JSON.stringify(tools, null, 2)}\n`);
        else table((line) => process.stdout.write(`${line}\n`), ['NAME', 'DESCRIPTION'], tools.map((tool) => [tool.name, firstLine(tool.description)]));
        for (const s of conflux.upstreams.statuses()) {
          if (s.state !== 'ready' && s.state !== 'disabled') process.stderr.write(`warning: ${s.name} is ${s.state}: ${s.lastError ?? ''}\n`);
        }
        return 0;
      });
    case 'call': {
      const name = rest[0];
      if (!name) {
        process.stderr.write(`call: missing the tool name\n\n${commandUsage('call')}`);
        return EXIT_USAGE;
      }
      const args = parseToolArguments(values.args);
      if (args instanceof Error) {
        process.stderr.write(`call: --args ${args.message}\n`);
        return EXIT_USAGE;
      }
      return callCommand(config, env, logging, name, args, values['admin-token'] ?? (env.variables[ADMIN_TOKEN_VARIABLE] || undefined));
    }
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: string): number {
  process.stderr.write(`unknown command "${command}"\n\n${globalUsage()}`);
  return EXIT_USAGE;
}

/** `conflux migrate`: which migrations it applied, or that there were none to apply. */
async function migrateCommand(env: Environment): Promise<number> {
  const dataDir = join(env.dataDir, 'pgdata');
  let database: OpenedDatabase;
  try {
    database = await openDatabase({ url: env.databaseUrl, dataDir, progress: (line) => process.stderr.write(`${line}\n`) });
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    process.stderr.write(`migrate: ${error.message}\n`);
    return 1;
  }
  try {
    const applied = await database.migrate();
    const where = describeDatabase(env.databaseUrl, dataDir);
    process.stdout.write(applied.length > 0 ? `applied ${applied.join(', ')} to ${where}\n` : `${where} is already up to date\n`);
    return 0;
  } finally {
    await database.close();
  }
}

interface ServeOptions {
  config: Config;
  configFile: ConfigFile;
  env: Environment;
  logging: LoggerOptions;
  hostOption: string | undefined;
  portOption: string | undefined;
}

async function serve({ config, configFile, env, logging, hostOption, portOption }: ServeOptions): Promise<number> {
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
  const { createConflux } = await loadGateway();
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

/**
 * `conflux call`: the call is written to the gateway's audit trail like any other. The CLI
 * opens the database itself, or, when a serving gateway holds the embedded one, that gateway
 * makes the call (and audits it).
 */
async function callCommand(config: Config, env: Environment, logging: LoggerOptions, name: string, args: Record<string, unknown>, token: string | undefined): Promise<number> {
  const print = (result: unknown, isError: unknown) => {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return isError === true ? 1 : 0;
  };
  let database: OpenedDatabase | undefined;
  try {
    database = await openDatabase({ url: env.databaseUrl, dataDir: join(env.dataDir, 'pgdata'), progress: (line) => process.stderr.write(`${line}\n`) });
    await database.migrate();
  } catch (error) {
    // This command has no logger (results on stdout, problems on stderr) and reports the open's own error below.
    await database?.close().catch(() => {});
    if (error instanceof DataDirLockedError && error.holder.url !== undefined) {
      process.stderr.write(`(through the gateway at ${error.holder.url}, which holds ${error.dataDir})\n`);
      try {
        const result = await gatewayToolCall(error.holder.url, token, name, args);
        return print(result, result.isError);
      } catch (failure) {
        process.stderr.write(`call: ${(failure as Error).message}\n`);
        return 1;
      }
    }
    process.stderr.write(`call: cannot open the database for the audit trail: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    return await withUpstreams(config, env, logging, async (conflux) => {
      try {
        const result = await conflux.callTool({ name, arguments: args });
        return print(result, result.isError);
      } catch (error) {
        process.stderr.write(`call: ${(error as Error).message}\n`);
        return 1;
      }
    }, database);
  } finally {
    await database.close();
  }
}

async function withUpstreams(config: Config, env: Environment, logging: LoggerOptions, body: (conflux: Conflux) => Promise<number>, database?: OpenedDatabase): Promise<number> {
  const { createConflux } = await loadGateway();
  const conflux = createConflux(config, { logger: createLogger(env.logLevel === 'info' ? 'warn' : env.logLevel, logging), database, env: env.variables });
  try {
    await conflux.start();
    // Results go to stdout; what it waits for, to stderr.
    await settleWithProgress(conflux.upstreams, connectBudgetMs(Object.values(config.servers)), (line) => process.stderr.write(`${line}\n`));
    await new Promise((resolve) => setImmediate(resolve)); // let the catalog rebuild run
    return await body(conflux);
  } finally {
    await conflux.stop();
  }
}

/**
 * The gateway's modules, loaded only by the commands that run it: they are most of what the CLI
 * would load (about 1 s of CPU), which `--version`, `--help`, `validate` and the key and grant
 * commands have no use for.
 */
function loadGateway(): Promise<typeof import('./conflux.js')> {
  return import('./conflux.js');
}

function parseToolArguments(text: string | undefined): Record<string, unknown> | Error {
  if (text === undefined) return {};
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return new Error('must be a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    return new Error(`is not valid JSON: ${(error as Error).message}`);
  }
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]!.slice(0, 100);
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Streams and timers left by a failed upstream must not keep a finished command alive.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (error) => {
    process.stderr.write(`conflux: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);

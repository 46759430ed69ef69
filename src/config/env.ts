/**
 * The only reader of `process.env`. Everything else receives these values as arguments.
 */
export interface Environment {
  configPath: string | undefined;
  host: string | undefined;
  port: number | undefined;
  logLevel: string;
  /** `postgres://...`; without it, embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** `redis://...`: shared state for several replicas. */
  redisUrl: string | undefined;
  /** `CONFLUX_REDIS_PREFIX`: the start of every Redis key and channel (default `conflux:`), so deployments can share one Redis. */
  redisPrefix: string;
  /** `CONFLUX_WORKERS`: a number or `auto`, overriding `gateway.workers`. */
  workers: string | undefined;
  /** The whole environment, for `${VAR}` interpolation in the config file. */
  variables: Readonly<Record<string, string | undefined>>;
}

export function readEnvironment(source: NodeJS.ProcessEnv = process.env): Environment {
  const port = source.CONFLUX_PORT ?? source.PORT;
  return {
    configPath: source.CONFLUX_CONFIG || undefined,
    host: source.CONFLUX_HOST || undefined,
    port: port ? Number(port) : undefined,
    logLevel: source.LOG_LEVEL || 'info',
    databaseUrl: source.DATABASE_URL || undefined,
    dataDir: source.CONFLUX_DATA_DIR || '.conflux',
    redisUrl: source.REDIS_URL || undefined,
    workers: source.CONFLUX_WORKERS || undefined,
    redisPrefix: source.CONFLUX_REDIS_PREFIX || 'conflux:',
    variables: source,
  };
}

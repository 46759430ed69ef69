/**
 * The only reader of `process.env`. Everything else receives these values as arguments.
 */
export interface Environment {
  configPath: string | undefined;
  host: string | undefined;
  port: number | undefined;
  logLevel: LogLevel;
  /** `LOG_FORMAT`: `pretty` or `json`; unset, the CLI chooses by whether stderr is a terminal. */
  logFormat: LogFormat | undefined;
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

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Variables set to values Conflux cannot use; the message names each one and what it accepts. */
export class EnvironmentError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'EnvironmentError';
  }
}

/**
 * The settings Conflux takes from `source`, checked: a value it cannot use raises an
 * `EnvironmentError` listing every such variable, rather than failing later with a stack.
 */
export function readEnvironment(source: Readonly<Record<string, string | undefined>> = process.env): Environment {
  const problems: string[] = [];
  const portVariable = source.CONFLUX_PORT ? 'CONFLUX_PORT' : 'PORT';
  const port = parsePort(source[portVariable]);
  if (port instanceof Error) problems.push(`${portVariable} must be a port number 1-65535 (got "${source[portVariable]}")`);
  const logLevel = oneOf(source.LOG_LEVEL || 'info', LOG_LEVELS);
  if (logLevel === undefined) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${source.LOG_LEVEL}")`);
  const logFormat = source.LOG_FORMAT ? oneOf(source.LOG_FORMAT, LOG_FORMATS) : undefined;
  if (source.LOG_FORMAT && logFormat === undefined) problems.push(`LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')} (got "${source.LOG_FORMAT}")`);
  if (problems.length > 0) throw new EnvironmentError(problems);
  return {
    configPath: source.CONFLUX_CONFIG || undefined,
    host: source.CONFLUX_HOST || undefined,
    port: port as number | undefined,
    logLevel: logLevel!,
    logFormat,
    databaseUrl: source.DATABASE_URL || undefined,
    dataDir: source.CONFLUX_DATA_DIR || '.conflux',
    redisUrl: source.REDIS_URL || undefined,
    workers: source.CONFLUX_WORKERS || undefined,
    redisPrefix: source.CONFLUX_REDIS_PREFIX || 'conflux:',
    variables: source,
  };
}

/** `text` as one of `values`, or undefined when it is none of them. */
export function oneOf<T extends string>(text: string, values: readonly T[]): T | undefined {
  return (values as readonly string[]).includes(text) ? (text as T) : undefined;
}

function parsePort(text: string | undefined): number | undefined | Error {
  if (!text) return undefined;
  const port = Number(text);
  return /^\d+$/.test(text.trim()) && port >= 1 && port <= 65_535 ? port : new Error('not a port');
}

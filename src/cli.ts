#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { commandUsage, EXIT_USAGE, globalUsage } from './cli-help.js';
import { ENV_FILE_OPTION_REFUSED, EnvFileError, environmentWithEnvFile } from './config/dotenv.js';
import { DEFAULT_CONFIG_FILE, SAMPLE_CONFIG_FILE, defaultConfigFile } from './config/default-config-file.js';
import { EnvironmentError, LOG_FORMATS, oneOf, readEnvironment, type Environment } from './config/env.js';
import { ConfigError, readConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import type { LoggerOptions } from './observability/logger.js';
import type { ConfigFile } from './cli-serve.js';
import { DatabaseUnavailableError } from './store/database-errors.js';
import { GATEWAY_VERSION } from './version.js';

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

/**
 * Runs `command`. What it runs (the gateway, the database, Redis, the admin API) is loaded by that
 * command alone: it is most of what the CLI would load, and `validate` has no use for it.
 */
async function runCommand({ command, rest, values, env, logging, config, configFile }: Invocation): Promise<number> {
  const configPath = configFile.path;
  switch (command) {
    case 'validate':
      process.stdout.write(`${configPath}: valid (${Object.keys(config.servers).length} servers)\n`);
      return 0;
    case 'serve':
      return (await import('./cli-serve.js')).serve({ config, configFile, env, logging, hostOption: values.host, portOption: values.port });
    case 'migrate':
      return (await import('./cli-commands.js')).migrateCommand(env);
    case 'keys':
    case 'access':
    case 'connections':
      return (await import('./admin-commands.js')).adminCommand(command, rest, { ...values, adminToken: values['admin-token'] }, env, { access: config.gateway.access, servers: Object.keys(config.servers) }, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    case 'tools':
      return (await import('./cli-commands.js')).toolsCommand(config, env, logging, values.json === true);
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
      return (await import('./cli-commands.js')).callCommand(config, env, logging, name, args, values['admin-token']);
    }
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: string): number {
  process.stderr.write(`unknown command "${command}"\n\n${globalUsage()}`);
  return EXIT_USAGE;
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

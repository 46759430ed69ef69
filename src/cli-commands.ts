/**
 * The commands that open the database or run the gateway inside the CLI's own process:
 * `migrate`, `tools` and `call`. Loaded only by them (src/cli.ts); the gateway itself only by
 * the two that run it.
 */

import { join } from 'node:path';
import { gatewayToolCall } from './admin-api-client.js';
import { ADMIN_TOKEN_VARIABLE, table } from './admin-commands.js';
import type { Environment } from './config/env.js';
import type { Config } from './config/schema.js';
import type { Conflux } from './conflux.js';
import { createLogger, type LoggerOptions } from './observability/logger.js';
import { connectBudgetMs, describeDatabase, settleWithProgress } from './startup-report.js';
import { DataDirLockedError } from './store/data-dir-lock.js';
import { openDatabase, type OpenedDatabase } from './store/database.js';

/** `conflux migrate`: which migrations it applied, or that there were none to apply. */
export async function migrateCommand(env: Environment): Promise<number> {
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

/** `conflux tools`: the merged tool list, as a table or (`json`) as JSON; upstreams not ready are warned of. */
export function toolsCommand(config: Config, env: Environment, logging: LoggerOptions, json: boolean): Promise<number> {
  return withUpstreams(config, env, logging, async (conflux) => {
    const tools = conflux.catalog.current.tools;
    if (json) process.stdout.write(`${JSON.stringify(tools, null, 2)}\n`);
    else table((line) => process.stdout.write(`${line}\n`), ['NAME', 'DESCRIPTION'], tools.map((tool) => [tool.name, firstLine(tool.description)]));
    for (const s of conflux.upstreams.statuses()) {
      if (s.state !== 'ready' && s.state !== 'disabled') process.stderr.write(`warning: ${s.name} is ${s.state}: ${s.lastError ?? ''}\n`);
    }
    return 0;
  });
}

/**
 * `conflux call`: the call is written to the gateway's audit trail like any other. The CLI
 * opens the database itself, or, when a serving gateway holds the embedded one, that gateway
 * makes the call (and audits it).
 */
export async function callCommand(config: Config, env: Environment, logging: LoggerOptions, name: string, args: Record<string, unknown>, tokenOption: string | undefined): Promise<number> {
  const token = tokenOption ?? (env.variables[ADMIN_TOKEN_VARIABLE] || undefined);
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
  // Loaded here, not with this module: `migrate` runs no gateway.
  const { createConflux } = await import('./conflux.js');
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

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]!.slice(0, 100);
}

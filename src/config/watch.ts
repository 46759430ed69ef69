import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, formatProblem, readConfigFile, type LoadedConfig } from './load.js';
import type { Config, GatewaySettings } from './schema.js';
import { serverChanges, type ServerChanges } from './server-changes.js';

/**
 * The `gateway.*` settings that differ between the running config and an edited one, as
 * dotted names. A running gateway applies only its servers from an edited file; these need a
 * restart, and the operator is told so rather than led to think they took effect.
 */
export function changedGatewaySettings(running: GatewaySettings, next: GatewaySettings): string[] {
  const keys = new Set([...Object.keys(running), ...Object.keys(next)]) as Set<keyof GatewaySettings>;
  return [...keys].filter((key) => JSON.stringify(running[key]) !== JSON.stringify(next[key])).map((key) => `gateway.${key}`);
}

/**
 * How one reload ended (the `result` of `conflux_config_reloads_total`): its servers applied,
 * no server changed, the file refused (invalid: the running config stays), or applying failed.
 */
export type ReloadResult = 'applied' | 'unchanged' | 'rejected' | 'failed';

export interface ConfigWatchOptions {
  path: string;
  /** Variables for `${VAR}` interpolation, as the file was first read with. */
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** The config the gateway started with: what the first edit is compared with, and whose gateway settings stay. */
  running: Config;
  /** Applies an edited config's servers; resolves once they are applied. */
  apply: (config: Config) => Promise<void>;
  /** Told the result of each reload. */
  onReloaded?: (result: ReloadResult) => void;
  debounceMs?: number;
}

export interface ConfigWatch {
  /**
   * Reads the file now, whether or not it changed, and applies what changed in its servers
   * (`reason` names what asked, for the log). Never rejects; undefined once closed.
   */
  reload(reason: string): Promise<ReloadResult | undefined>;
  close(): void;
}

/**
 * Watches the config file and applies each edit that still validates; an invalid edit is logged
 * with every problem and its file:line:column, and the running config stays. The folder is
 * watched rather than the file, and every event in it leads to a look at the file's content:
 * editors replace the file rather than write it, and a Kubernetes ConfigMap changes by swapping
 * the folder's `..data` symlink, under a file that is itself a symlink and never changes.
 * A server whose catalog settings alone changed keeps its connection (`config/server-changes.ts`).
 */
export function watchConfigFile(options: ConfigWatchOptions): ConfigWatch {
  const { env, logger, apply, debounceMs = 200 } = options;
  const file = resolve(options.path);
  /** The config last applied: what an edit's servers are compared with. */
  let applied = options.running;
  /** The content last read, as a digest; undefined before the first look. */
  let digest: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** Reloads run one at a time, in order (each catches its own failures). */
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next;
    return next;
  };

  const report = (result: ReloadResult): ReloadResult => {
    options.onReloaded?.(result);
    return result;
  };

  /** `quiet`: the first look, which only tells when the file changed while the gateway started. */
  const reloadNow = async (reason: string, quiet: boolean): Promise<ReloadResult | undefined> => {
    if (closed) return undefined;
    let loaded: LoadedConfig;
    try {
      loaded = await readConfigFile(file, env);
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        logger.error({ file, reason, err: (error as Error).message }, `config reload (${reason}) failed; the running config stays`);
        return report('failed');
      }
      const problems = error.located.map((problem) => formatProblem(file, problem));
      logger.error({ file, reason, problems }, `config reload (${reason}) rejected; the running config stays:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
      return report('rejected');
    }
    if (closed) return undefined;
    const next = loaded.config;
    const changes = serverChanges(applied.servers, next.servers);
    const restartNeeded = changedGatewaySettings(options.running.gateway, next.gateway);
    const level = restartNeeded.length > 0 ? 'warn' : 'info';
    const fields = { file, reason, ...changes, restartNeeded };
    if (!Object.values(changes).some((names) => names.length > 0)) {
      applied = next;
      if (quiet && restartNeeded.length === 0) return undefined;
      logger[level]({ ...fields, result: 'unchanged' }, `config reload (${reason}): no server changed${restartNote(restartNeeded)}`);
      return report('unchanged');
    }
    for (const warning of loaded.warnings) logger.warn({ file }, warning);
    try {
      await apply(next);
    } catch (error) {
      // The registry holds the new servers even when one failed to apply: the next edit is compared with them.
      applied = next;
      logger.error({ ...fields, result: 'failed', err: (error as Error).message }, `config reload (${reason}) failed while applying: ${(error as Error).message}`);
      return report('failed');
    }
    applied = next;
    logger[level]({ ...fields, result: 'applied' }, `config reload (${reason}) applied: ${describeChanges(changes)}${restartNote(restartNeeded)}`);
    return report('applied');
  };

  /** A look at the file after an event: reloaded only when its content is not what was read last. */
  const look = async (reason: string): Promise<void> => {
    const now = await digestOf(file);
    if (now === digest) return;
    const first = digest === undefined;
    digest = now;
    await reloadNow(reason, first);
  };

  const watcher: FSWatcher = watch(dirname(file), () => {
    clearTimeout(timer);
    timer = setTimeout(() => void serial(() => look('file changed')), debounceMs);
  });
  watcher.on('error', (error) => logger.warn({ file, err: error.message }, 'config watcher error'));
  // An edit made while the gateway started (after the file was read) is applied now.
  void serial(() => look('file changed'));

  return {
    reload(reason) {
      return serial(async () => {
        digest = await digestOf(file);
        return reloadNow(reason, false);
      });
    },
    close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}

/** The file's content as a digest (through any symlinks); a file that cannot be read has one of its own, so that its return is noticed. */
async function digestOf(file: string): Promise<string> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('base64url');
  } catch (error) {
    return `unreadable: ${(error as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** `servers added: a; reconnected: b, c; updated in place: d` */
function describeChanges(changes: ServerChanges): string {
  const parts: [string, string[]][] = [
    ['added', changes.added],
    ['removed', changes.removed],
    ['reconnected', changes.reconnected],
    ['updated in place', changes.updated],
  ];
  return `servers ${parts
    .filter(([, names]) => names.length > 0)
    .map(([what, names]) => `${what}: ${names.join(', ')}`)
    .join('; ')}`;
}

function restartNote(settings: readonly string[]): string {
  return settings.length > 0 ? `; ${settings.join(', ')} changed and take${settings.length === 1 ? 's' : ''} effect at the next restart` : '';
}

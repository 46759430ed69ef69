import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfigFile } from './load.js';
import type { Config, GatewaySettings } from './schema.js';

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
 * Calls `onChange` with the new config whenever the file changes and still validates. An
 * invalid edit is logged with every problem and otherwise ignored: the running config stays.
 * The folder is watched, not the file, because editors replace files rather than write them.
 */
export function watchConfigFile(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger,
  onChange: (config: Config) => void | Promise<void>,
  debounceMs = 200,
): { close(): void } {
  const file = resolve(path);
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  const reload = async () => {
    try {
      const config = await loadConfigFile(file, env);
      const signature = JSON.stringify(config);
      if (signature === last) return;
      last = signature;
      logger.info({ file }, 'config file changed; applying its servers');
      await onChange(config);
    } catch (error) {
      if (error instanceof ConfigError) logger.error({ file, problems: error.problems }, 'config file change rejected; keeping the running config');
      else logger.error({ file, err: (error as Error).message }, 'config reload failed');
    }
  };
  void loadConfigFile(file, env).then(
    (config) => (last = JSON.stringify(config)),
    () => {},
  );
  const watcher: FSWatcher = watch(dirname(file), (_event, name) => {
    if (name !== null && name !== basename(file)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
  });
  watcher.on('error', (error) => logger.warn({ err: error.message }, 'config watcher error'));
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The config file read when none is named, from the working directory. */
export const DEFAULT_CONFIG_FILE = 'mcp-servers.yaml';

/** The sample config shipped at the package's root (this module is in src/config/ or dist/config/). */
export const SAMPLE_CONFIG_FILE = fileURLToPath(new URL('../../mcp-servers.yaml', import.meta.url));

/**
 * The config file to read when neither `--config` nor CONFLUX_CONFIG names one: the working
 * directory's `mcp-servers.yaml`, else the package's sample, so that `npx conflux-gateway` in a
 * folder without a config serves the demo servers instead of stopping at "file not found".
 */
export function defaultConfigFile(cwd: string = process.cwd()): string {
  return existsSync(resolve(cwd, DEFAULT_CONFIG_FILE)) || !existsSync(SAMPLE_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : SAMPLE_CONFIG_FILE;
}

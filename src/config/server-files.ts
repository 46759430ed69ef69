import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseDotenv } from 'dotenv';

/**
 * The files a server entry names, made independent of the folder the gateway runs in:
 *
 * - `envFile` (VS Code, Cursor) is read (dotenv syntax) and its variables put under the
 *   entry's own `env`, which wins. Its values are taken as written, never interpolated: a `$`
 *   in a password stays a `$`.
 * - A relative `cwd` is relative to the config file's folder.
 * - A `command` written `./x` or `../x` is relative to `cwd` when one is given (as a shell
 *   would run it there), otherwise to the config file's folder. A bare name is looked up on
 *   PATH; `args` are left as they are, since only the server knows which of them are paths.
 * - A bare name that is not on PATH is looked for in the `node_modules/.bin` of the config
 *   file's folder, then in Conflux's own (see `packageBinFolders`), and when found there becomes
 *   that file's path. The demo servers' commands are bins of Conflux's dependencies, on PATH
 *   under `npm start` but not under `node dist/cli.js` or a global install; the child's PATH is
 *   left as it is.
 */
export interface ServerFileProblem {
  path: (string | number)[];
  message: string;
  /** `unset`: the file is missing (not required of a disabled server); `malformed`: the entry is wrong. */
  kind: 'unset' | 'malformed';
}

/**
 * `document` (Conflux's shape, interpolated) with envFiles read and relative paths resolved against `baseDir`.
 * `pathVariable` is the gateway's PATH, which a server's own `env.PATH` replaces, as when the process is started.
 */
export function resolveServerFiles(
  document: Record<string, unknown>,
  baseDir: string | undefined,
  pathVariable?: string | undefined,
): { document: Record<string, unknown>; problems: ServerFileProblem[] } {
  const problems: ServerFileProblem[] = [];
  const servers = document.servers;
  if (!isRecord(servers)) return { document, problems };
  const resolved: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(servers)) {
    resolved[name] = isRecord(entry) ? resolveEntry(entry, baseDir, pathVariable, ['servers', name], problems) : entry;
  }
  return { document: { ...document, servers: resolved }, problems };
}

function resolveEntry(
  entry: Record<string, unknown>,
  baseDir: string | undefined,
  pathVariable: string | undefined,
  path: string[],
  problems: ServerFileProblem[],
): Record<string, unknown> {
  const { envFile, ...server } = entry;
  if (envFile !== undefined) {
    const variables = readEnvFile(envFile, baseDir, [...path, 'envFile'], problems);
    if (variables && (server.env === undefined || isRecord(server.env))) server.env = { ...variables, ...(server.env as Record<string, unknown> | undefined) };
  }
  if (typeof server.command === 'string') {
    const ownPath = isRecord(server.env) && typeof server.env.PATH === 'string' ? server.env.PATH : pathVariable;
    server.command = installedCommand(server.command, ownPath, baseDir) ?? server.command;
  }
  if (baseDir === undefined) return server;
  if (typeof server.cwd === 'string' && server.cwd !== '' && !isAbsolute(server.cwd)) server.cwd = resolve(baseDir, server.cwd);
  if (typeof server.command === 'string' && /^\.\.?[\\/]/.test(server.command)) {
    server.command = resolve(typeof server.cwd === 'string' && server.cwd !== '' ? server.cwd : baseDir, server.command);
  }
  return server;
}

/**
 * The `node_modules/.bin` folders of Conflux's own installation: its package's, and, when npm
 * put its dependencies beside it rather than inside it (npx, a workspace), the `node_modules`
 * folder it sits in. This module is in src/config/ or dist/config/, two levels below the root.
 */
export function packageBinFolders(packageRoot: string = PACKAGE_ROOT): string[] {
  const folders = [join(packageRoot, 'node_modules', '.bin')];
  for (let dir = dirname(packageRoot); dir !== dirname(dir); dir = dirname(dir)) {
    if (basename(dir) === 'node_modules') {
      folders.push(join(dir, '.bin'));
      break;
    }
  }
  return folders;
}

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Where a bare `command` that is not on PATH is installed: the executable of that name in the
 * config folder's `node_modules/.bin`, else in Conflux's own. Undefined when it is on PATH (it
 * stays a bare name, found there when started), or nowhere, or not a bare name.
 */
function installedCommand(command: string, pathVariable: string | undefined, baseDir: string | undefined): string | undefined {
  // A path is resolved above; a per-user command is known only when an instance starts.
  if (command === '' || /[\\/]/.test(command) || command.includes('${')) return undefined;
  const onPath = (pathVariable ?? '').split(delimiter).filter(Boolean);
  if (onPath.some((folder) => isExecutableFile(join(folder, command)))) return undefined;
  const installed = [...(baseDir === undefined ? [] : [join(baseDir, 'node_modules', '.bin')]), ...packageBinFolders()];
  return installed.map((folder) => join(folder, command)).find(isExecutableFile);
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function readEnvFile(envFile: unknown, baseDir: string | undefined, path: string[], problems: ServerFileProblem[]): Record<string, string> | undefined {
  if (typeof envFile !== 'string' || envFile === '') {
    problems.push({ path, kind: 'malformed', message: 'expected the path of a file of NAME=value lines' });
    return undefined;
  }
  const file = resolve(baseDir ?? '.', envFile);
  try {
    return parseDotenv(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push({ path, kind: 'unset', message: code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${code ?? (error as Error).message})` });
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

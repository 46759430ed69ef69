import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
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
 */
export interface ServerFileProblem {
  path: (string | number)[];
  message: string;
  /** `unset`: the file is missing (not required of a disabled server); `malformed`: the entry is wrong. */
  kind: 'unset' | 'malformed';
}

/** `document` (Conflux's shape, interpolated) with envFiles read and relative paths resolved against `baseDir`. */
export function resolveServerFiles(document: Record<string, unknown>, baseDir: string | undefined): { document: Record<string, unknown>; problems: ServerFileProblem[] } {
  const problems: ServerFileProblem[] = [];
  const servers = document.servers;
  if (!isRecord(servers)) return { document, problems };
  const resolved: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(servers)) {
    resolved[name] = isRecord(entry) ? resolveEntry(entry, baseDir, ['servers', name], problems) : entry;
  }
  return { document: { ...document, servers: resolved }, problems };
}

function resolveEntry(entry: Record<string, unknown>, baseDir: string | undefined, path: string[], problems: ServerFileProblem[]): Record<string, unknown> {
  const { envFile, ...server } = entry;
  if (envFile !== undefined) {
    const variables = readEnvFile(envFile, baseDir, [...path, 'envFile'], problems);
    if (variables && (server.env === undefined || isRecord(server.env))) server.env = { ...variables, ...(server.env as Record<string, unknown> | undefined) };
  }
  if (baseDir === undefined) return server;
  if (typeof server.cwd === 'string' && server.cwd !== '' && !isAbsolute(server.cwd)) server.cwd = resolve(baseDir, server.cwd);
  if (typeof server.command === 'string' && /^\.\.?[\\/]/.test(server.command)) {
    server.command = resolve(typeof server.cwd === 'string' && server.cwd !== '' ? server.cwd : baseDir, server.command);
  }
  return server;
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

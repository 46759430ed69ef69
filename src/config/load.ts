import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, extname, resolve } from 'node:path';
import type { z } from 'zod';
import { normalizeDialect } from './client-config-formats.js';
import { unstartableServers } from './command-check.js';
import { didYouMean } from './did-you-mean.js';
import { interpolateEnv } from './interpolate.js';
import { knownKeysAt, SERVER_KEYS, unknownServerKeys } from './known-keys.js';
import { ConfigSchema, type Config } from './schema.js';
import { resolveServerFiles } from './server-files.js';
import { parseSource, type PositionQuery, type SourcePosition } from './source-positions.js';

/** One fault or warning, led by its path, and where it is written when that is known. */
export interface ConfigProblem {
  /** `servers.a.command: is required` */
  text: string;
  position?: SourcePosition | undefined;
}

/** A config that cannot be used; `problems` lists every fault, each led by its path. */
export class ConfigError extends Error {
  /** The faults as `path: message`; `located` has them with their line and column. */
  readonly problems: string[];
  readonly located: ConfigProblem[];

  constructor(
    readonly source: string,
    problems: readonly (string | ConfigProblem)[],
  ) {
    const located = problems.map((problem) => (typeof problem === 'string' ? { text: problem } : problem));
    super(`invalid configuration in ${source}:\n${located.map((p) => `  - ${formatProblem(source, p)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = located.map((p) => p.text);
    this.located = located;
  }
}

/** `file:line:column: path: message`, the form editors and terminals turn into a link. */
export function formatProblem(source: string, problem: ConfigProblem): string {
  return problem.position ? `${source}:${problem.position.line}:${problem.position.column}: ${problem.text}` : problem.text;
}

export interface ParseOptions {
  /** Where the text came from, for messages. */
  source: string;
  /** Variables for `${VAR}` interpolation. */
  env: Readonly<Record<string, string | undefined>>;
  /**
   * The config file's folder: relative `cwd`, `./command` and `envFile` are resolved against it
   * (see server-files.ts), or against the project of a `.vscode/` or `.cursor/` file. Without it
   * (text not read from a file) they are left as written.
   */
  configDir?: string | undefined;
  /** JSON with comments (VS Code's `mcp.json`); default: guessed from the first character. */
  json?: boolean | undefined;
}

export interface LoadedConfig {
  config: Config;
  /** Things left out or likely to fail, each `file:line:column: path: message`. */
  warnings: string[];
}

/** Parses YAML or JSON config text (Conflux's `servers:` form, `mcpServers`, or VS Code's `mcp.json`). */
export function parseConfig(text: string, options: ParseOptions): Config {
  return parseConfigText(text, options).config;
}

/** As `parseConfig`, with the warnings. */
export function parseConfigText(text: string, options: ParseOptions): LoadedConfig {
  const { config, warnings, source } = parseWithPositions(text, options);
  return { config, warnings: warnings.map((w) => formatProblem(source, w)) };
}

export interface ReadOptions {
  /**
   * Stdio servers whose command or `cwd` does not exist: `error` refuses the config (`validate`),
   * `warn` lists them among the warnings (`serve`: the rest start), `skip` does not look.
   */
  commands?: 'error' | 'warn' | 'skip';
}

/** Reads and parses a config file, with the warnings its reader should show. */
export async function readConfigFile(path: string, env: ParseOptions['env'], options: ReadOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? String(error)})`]);
  }
  const parsed = parseWithPositions(text, { source: path, env, configDir: dirname(resolve(path)), json: extname(path).toLowerCase() === '.json' });
  const warnings = [...parsed.warnings];
  const mode = options.commands ?? 'warn';
  if (mode !== 'skip') {
    const unstartable = (await unstartableServers(parsed.config, env.PATH)).map((u) => parsed.locate(u.path, u.message));
    if (mode === 'error' && unstartable.length > 0) throw new ConfigError(path, unstartable);
    warnings.push(...unstartable);
  }
  return { config: parsed.config, warnings: warnings.map((w) => formatProblem(path, w)) };
}

/** Reads and parses a config file. */
export async function loadConfigFile(path: string, env: ParseOptions['env']): Promise<Config> {
  return (await readConfigFile(path, env, { commands: 'skip' })).config;
}

interface PositionedConfig {
  config: Config;
  source: string;
  warnings: ConfigProblem[];
  locate: Locate;
}

/** A problem at `path` of the parsed config, led by the path as the file writes it and placed at `query.at` (default: `path`). */
type Locate = (path: readonly PropertyKey[], message: string, query?: PositionQuery & { at?: readonly PropertyKey[] }) => ConfigProblem;

function parseWithPositions(text: string, options: ParseOptions): PositionedConfig {
  const json = options.json ?? /^\s*(\{|\/\/|\/\*)/.test(text);
  const parsed = parseSource(text, { json });
  if (parsed.errors.length > 0) {
    const kind = json ? 'JSON' : 'YAML or JSON';
    throw new ConfigError(options.source, parsed.errors.map((e) => ({ text: `not valid ${kind}: ${e.message}`, position: e.position })));
  }
  const document = parsed.document ?? {};
  if (typeof document !== 'object' || Array.isArray(document) || document === null) {
    throw new ConfigError(options.source, ['the document must be a mapping with a `servers:` key']);
  }

  const normalized = normalizeDialect(document as Record<string, unknown>);
  const locate: Locate = (path, message, query = {}) => {
    const written = normalized.sourcePath(path);
    return { text: `${formatPath(written)}: ${message}`, position: parsed.positionOf(query.at ? normalized.sourcePath(query.at) : written, query) };
  };
  const warnings: ConfigProblem[] = [
    ...parsed.warnings.map((w) => ({ text: w.message, position: w.position })),
    ...normalized.warnings.map((w) => ({ text: `${formatPath(w.path)}: ${w.message}`, position: parsed.positionOf(w.path, { key: true }) })),
  ];

  const project = options.configDir === undefined ? undefined : projectFolderOf(options.configDir);
  const { value, problems: referenceProblems } = interpolateEnv(normalized.document, options.env, {
    workspaceFolder: project,
    userHome: options.env.HOME || homedir(),
    inputs: normalized.inputs,
  });
  const disabled = disabledServers(value);
  // What the environment lacks is not required of a disabled server; a mistake in the text is.
  const required = (p: { path: PropertyKey[]; kind: 'unset' | 'malformed' }) => p.kind === 'malformed' || !(p.path[0] === 'servers' && disabled.has(String(p.path[1])));
  const files = resolveServerFiles(value as Record<string, unknown>, project, options.env.PATH);

  const result = ConfigSchema.safeParse(files.document);
  const issues = result.success ? [] : result.error.issues;
  const misplaced = schemaProblems(issues, files.document, locate);
  const problems = [
    ...misplaced.misspelt,
    ...referenceProblems.filter(required).map((p) => locate(p.path, p.message, { fragment: p.fragment })),
    ...files.problems.filter(required).map((p) => locate(p.path, p.message)),
    ...misplaced.rest,
  ];
  if (problems.length > 0 || !result.success) throw new ConfigError(options.source, problems);
  return { config: result.data, source: options.source, warnings, locate };
}

/**
 * The schema's complaints, with the unknown keys that look misspelt apart: they are reported
 * first, since a misspelt key is often why another is "required". A key another kind of server
 * takes (`command` beside `urls`) is no misspelling, and the complaint about the entry's kind
 * explains it better, so it keeps its place among the rest.
 */
function schemaProblems(issues: readonly z.core.$ZodIssue[], document: unknown, locate: Locate): { misspelt: ConfigProblem[]; rest: ConfigProblem[] } {
  const isMisspelt = (path: readonly PropertyKey[], key: string) => !(path.length === 2 && path[0] === 'servers' && SERVER_KEYS.includes(key));
  const unknownKey = (path: readonly PropertyKey[], key: string) =>
    locate(path, `unknown key "${key}"${didYouMean(key, knownKeysAt(document, path))}`, { at: [...path, key], key: true });
  const misspelt: ConfigProblem[] = [];
  const rest: ConfigProblem[] = [];
  const reported = new Set<string>();
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') {
      rest.push(locate(issue.path, describeIssue(issue), { key: issue.code === 'invalid_key' }));
      continue;
    }
    for (const key of issue.keys) {
      reported.add(`${formatPath(issue.path)}\0${key}`);
      (isMisspelt(issue.path, key) ? misspelt : rest).push(unknownKey(issue.path, key));
    }
  }
  // Keys the schema did not get to, in an entry whose kind it could not tell.
  for (const { path, key } of unknownServerKeys(document)) {
    if (!reported.has(`${formatPath(path)}\0${key}`)) misspelt.push(unknownKey(path, key));
  }
  return { misspelt: misspelt.sort(byPosition), rest };
}

/**
 * The folder a config file's relative paths and `${workspaceFolder}` refer to: the file's own,
 * except for VS Code's and Cursor's, which keep theirs in `<project>/.vscode/` and
 * `<project>/.cursor/` and run servers from `<project>`.
 */
function projectFolderOf(configDir: string): string {
  return ['.vscode', '.cursor'].includes(basename(configDir)) ? dirname(configDir) : configDir;
}

function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  return (a.position?.line ?? 0) - (b.position?.line ?? 0) || (a.position?.column ?? 0) - (b.position?.column ?? 0);
}

function disabledServers(document: unknown): Set<string> {
  const servers = (document as { servers?: unknown }).servers;
  const names = new Set<string>();
  if (servers && typeof servers === 'object') {
    for (const [name, server] of Object.entries(servers)) {
      if ((server as { enabled?: unknown } | null)?.enabled === false) names.add(name);
    }
  }
  return names;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key') return issue.issues.map((inner) => inner.message).join('; ');
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return 'is required';
  return issue.message;
}

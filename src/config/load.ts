import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { fromClaudeDesktopFormat, isClaudeDesktopFormat } from './claude-desktop-format.js';
import { interpolateEnv } from './interpolate.js';
import { ConfigSchema, type Config } from './schema.js';

/** A config that cannot be used; `problems` lists every fault, each led by its path. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface ParseOptions {
  /** Where the text came from, for messages. */
  source: string;
  /** Variables for `${VAR}` interpolation. */
  env: Readonly<Record<string, string | undefined>>;
}

/** Parses YAML or JSON config text (Conflux's `servers:` form or the `mcpServers` form). */
export function parseConfig(text: string, options: ParseOptions): Config {
  let document: unknown;
  try {
    document = text.trim() === '' ? {} : parseYaml(text, { prettyErrors: true });
  } catch (error) {
    const detail = error instanceof YAMLParseError ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(options.source, [`not valid YAML or JSON: ${detail}`]);
  }
  if (document === null || document === undefined) document = {};
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(options.source, ['the document must be a mapping with a `servers:` key']);
  }
  if (isClaudeDesktopFormat(document)) document = fromClaudeDesktopFormat(document);

  const { value, problems } = interpolateEnv(document, options.env);
  const disabled = disabledServers(value);
  const interpolationProblems = problems
    .filter((p) => !(p.path[0] === 'servers' && disabled.has(String(p.path[1]))))
    .map((p) => `${formatPath(p.path)}: ${p.message}`);

  const result = ConfigSchema.safeParse(value);
  const schemaProblems = result.success ? [] : result.error.issues.map(formatIssue);
  const all = [...interpolationProblems, ...schemaProblems];
  if (all.length > 0 || !result.success) throw new ConfigError(options.source, all);
  return result.data;
}

/** Reads and parses a config file. */
export async function loadConfigFile(path: string, env: ParseOptions['env']): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? String(error)})`]);
  }
  // JSON is YAML, but a .json file gets JSON's stricter reading so its errors read as JSON errors.
  if (extname(path).toLowerCase() === '.json') {
    try {
      JSON.parse(text);
    } catch (error) {
      throw new ConfigError(path, [`not valid JSON: ${(error as Error).message}`]);
    }
  }
  return parseConfig(text, { source: path, env });
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

function formatIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  if (issue.code === 'invalid_key') {
    return `${where}: ${issue.issues.map((inner) => inner.message).join('; ')}`;
  }
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
    return `${where}: is required`;
  }
  return `${where}: ${issue.message}`;
}

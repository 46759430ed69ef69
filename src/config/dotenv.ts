import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'dotenv';

/** The file read when no `--dotenv` is given, from the working directory (as `.env.example` suggests). */
export const DEFAULT_ENV_FILE = '.env';

/**
 * Why the CLI's option is `--dotenv` and not `--env-file`: Node 20 looks for `--env-file`
 * anywhere on its command line, after the script's name too, and exits ("node: x.env: not
 * found", code 9) before any of our code runs when the file is missing.
 */
export const ENV_FILE_OPTION_REFUSED = '--env-file is an option of Node.js itself, which reads it before Conflux starts: use --dotenv FILE';

/** A `--dotenv` file that cannot be read. */
export class EnvFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvFileError';
  }
}

export interface LoadedEnvironment {
  /** The real environment, with the file's variables it does not set itself. */
  variables: Record<string, string | undefined>;
  /** The file read, or undefined when there was none. */
  file: string | undefined;
}

/**
 * The environment with a `.env` file's variables added: `envFile` (`--dotenv`) when given (it must exist),
 * else `./.env` when there is one. A variable already set in the real environment is never
 * overridden: the file holds defaults for a checkout, the environment holds what this run
 * was given.
 */
export function environmentWithEnvFile(envFile: string | undefined, real: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LoadedEnvironment {
  const path = resolve(cwd, envFile ?? DEFAULT_ENV_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (envFile === undefined && (code === 'ENOENT' || code === 'EISDIR')) return { variables: { ...real }, file: undefined };
    throw new EnvFileError(`cannot read the env file ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  return { variables: mergeEnvFile(real, parse(text)), file: path };
}

/** `real` with the variables of `fromFile` it lacks; a variable set in `real`, even to "", stays. */
export function mergeEnvFile(real: Readonly<Record<string, string | undefined>>, fromFile: Readonly<Record<string, string>>): Record<string, string | undefined> {
  const variables: Record<string, string | undefined> = { ...real };
  for (const [name, value] of Object.entries(fromFile)) if (real[name] === undefined) variables[name] = value;
  return variables;
}

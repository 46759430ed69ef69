import { readFileSync, statSync, type Stats } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UpstreamAuthError } from './upstream-auth.js';

/** A secret named by a credential reference, read when it is used. */
export interface CredentialSource {
  /**
   * The current value; throws `UpstreamAuthError` (`misconfigured`) naming the reference, never a
   * value. `fresh`: look at a file now, not at most once a second (an upstream just refused what
   * it held, which may have been rotated since).
   */
  read(options?: { fresh?: boolean }): string;
  /** What the reference names, safe to show: `env://VAR`, `file:///path`, or `an inline value`. */
  readonly describe: string;
}

/** A file is looked at again (one `stat`) at most this often; a changed file is read again. */
const FILE_RECHECK_MS = 1000;

/**
 * Resolves `ref`: `env://VAR` reads the variable each time (the process's environment is
 * fixed, so this is a lookup); `file:///path` reads the file, and reads it again when its
 * size, modification time or inode change (a rotated secret, including one swapped in by
 * rename), trimming one trailing newline; anything else is the value itself.
 */
export function credentialSource(server: string, ref: string, env: Readonly<Record<string, string | undefined>>, now: () => number = Date.now): CredentialSource {
  if (ref.startsWith('env://')) {
    const name = ref.slice('env://'.length);
    return {
      describe: ref,
      read: () => {
        const value = env[name];
        if (value === undefined || value === '') throw new UpstreamAuthError('misconfigured', server, `the credential ${ref} is not set`);
        return value;
      },
    };
  }
  if (ref.startsWith('file://')) return fileSource(server, ref, now);
  return { describe: 'an inline value', read: () => ref };
}

function fileSource(server: string, ref: string, now: () => number): CredentialSource {
  let path: string;
  try {
    path = fileURLToPath(ref);
  } catch {
    return {
      describe: ref,
      read: () => {
        throw new UpstreamAuthError('misconfigured', server, `the credential ${ref} is not an absolute file:/// URI`);
      },
    };
  }
  let cached: { value: string; stamp: string; checkedAt: number } | undefined;
  return {
    describe: ref,
    read: (options) => {
      const at = now();
      if (cached && !options?.fresh && at - cached.checkedAt < FILE_RECHECK_MS) return cached.value;
      let stats: Stats;
      try {
        stats = statSync(path);
      } catch (error) {
        cached = undefined;
        throw new UpstreamAuthError('misconfigured', server, `the credential ${ref} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const stamp = `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
      if (cached && cached.stamp === stamp) {
        cached.checkedAt = at;
        return cached.value;
      }
      let value: string;
      try {
        value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        cached = undefined;
        throw new UpstreamAuthError('misconfigured', server, `the credential ${ref} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      if (value === '') throw new UpstreamAuthError('misconfigured', server, `the credential ${ref} is empty`);
      cached = { value, stamp, checkedAt: at };
      return value;
    },
  };
}

import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialSource } from '../../src/upstream/auth/credential-ref.js';
import { UpstreamAuthError } from '../../src/upstream/auth/upstream-auth.js';

/** The refusal `read()` throws, checked to name the reference and never a value. */
function refusal(read: () => string): UpstreamAuthError {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(UpstreamAuthError);
    return error as UpstreamAuthError;
  }
  throw new Error('expected the read to fail');
}

describe('credential references', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-credential-ref-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads env:// from the environment it was given, and says which variable is missing', () => {
    const env: Record<string, string | undefined> = { TOKEN: 'from-env-1' };
    const source = credentialSource('svc', 'env://TOKEN', env);
    expect(source.describe).toBe('env://TOKEN');
    expect(source.read()).toBe('from-env-1');
    const missing = refusal(() => credentialSource('svc', 'env://ABSENT', env).read());
    expect(missing).toMatchObject({ kind: 'misconfigured', server: 'svc', message: 'the credential env://ABSENT is not set' });
    expect(refusal(() => credentialSource('svc', 'env://EMPTY', { EMPTY: '' }).read()).message).toBe('the credential env://EMPTY is not set');
  });

  it('takes anything else as the value itself, described without it', () => {
    const source = credentialSource('svc', 'inline-value-123', {});
    expect(source.read()).toBe('inline-value-123');
    expect(source.describe).toBe('an inline value');
  });

  it('reads file:/// without its trailing newline, and again when it changes', async () => {
    const path = join(dir, 'token');
    await writeFile(path, 'first-value\n');
    let now = 0;
    const source = credentialSource('svc', pathToFileURL(path).href, {}, () => now);
    expect(source.read()).toBe('first-value');
    await writeFile(path, 'second-value-longer\n');
    // Within a second the file is not looked at again...
    now = 500;
    expect(source.read()).toBe('first-value');
    // ...unless the caller asks for a fresh look (an upstream just refused the old value).
    expect(source.read({ fresh: true })).toBe('second-value-longer');
    // A file swapped in by rename (a new inode) is noticed too.
    await writeFile(`${path}.new`, 'third-value\n');
    await rename(`${path}.new`, path);
    now = 2000;
    expect(source.read()).toBe('third-value');
  });

  it('refuses a missing, empty or relative file with the reference, never a value', async () => {
    const missing = refusal(() => credentialSource('svc', pathToFileURL(join(dir, 'nope')).href, {}).read());
    expect(missing.kind).toBe('misconfigured');
    expect(missing.message).toBe(`the credential ${pathToFileURL(join(dir, 'nope')).href} cannot be read (ENOENT)`);
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    expect(refusal(() => credentialSource('svc', pathToFileURL(empty).href, {}).read()).message).toContain('is empty');
    expect(refusal(() => credentialSource('svc', 'file://relative/path', {}).read()).message).toContain('not an absolute file:/// URI');
  });
});

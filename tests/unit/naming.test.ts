import { describe, expect, it } from 'vitest';
import { exposedName, isLegalName, legalName, MAX_NAME_LENGTH, shortHash } from '../../src/catalog/naming.js';

describe('naming', () => {
  it('joins prefix, separator and name', () => {
    expect(exposedName('github', '__', 'search_repositories')).toBe('github__search_repositories');
    expect(exposedName('gh', '-', 'search')).toBe('gh-search');
  });

  it('keeps the upstream name for an empty prefix', () => {
    expect(exposedName('', '__', 'echo')).toBe('echo');
  });

  it('replaces illegal characters and adds a hash of the original', () => {
    const name = exposedName('fs', '__', 'read.file');
    expect(name).toBe(`fs__read_file_${shortHash('fs__read.file')}`);
    expect(isLegalName(name)).toBe(true);
    // a legal name that looks the same stays distinct
    expect(exposedName('fs', '__', 'read_file')).toBe('fs__read_file');
  });

  it('shortens long names deterministically to at most 64 characters', () => {
    const long = 'x'.repeat(100);
    const a = exposedName('server', '__', long);
    expect(a.length).toBe(MAX_NAME_LENGTH);
    expect(isLegalName(a)).toBe(true);
    expect(exposedName('server', '__', long)).toBe(a);
    expect(exposedName('server', '__', `${long}y`)).not.toBe(a);
    expect(a.startsWith('server__xxx')).toBe(true);
  });

  it('leaves a 64-character legal name alone', () => {
    const name = 'a'.repeat(64);
    expect(legalName(name)).toBe(name);
    expect(legalName('a'.repeat(65))).not.toBe('a'.repeat(65));
  });

  it('handles names made only of illegal characters', () => {
    const name = legalName('é');
    expect(isLegalName(name)).toBe(true);
    expect(name).toMatch(/^__[0-9a-f]{8}$/);
  });
});

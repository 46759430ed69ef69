import { describe, expect, it } from 'vitest';
import type { LockHolder } from '../../src/store/data-dir-lock.js';
import { markCoversFolder } from '../../src/store/embedded-creation.js';

const WRITTEN_AT = Date.parse('2026-12-01T10:00:00.500Z');

function lock(overrides: Partial<LockHolder> = {}): LockHolder {
  return { pid: 41, startedAt: WRITTEN_AT - 5000, hostname: 'host', acquiredAt: '2026-12-01T10:00:00.000Z', token: 'creator', ...overrides };
}

describe('whether a creation mark covers what its folder holds', () => {
  it('does when the lock left on the folder is the one its creation ran under', () => {
    expect(markCoversFolder({ pid: 41, token: 'creator', writtenAt: WRITTEN_AT }, lock())).toBe(true);
  });

  it('does not when another process held the folder since, or none is left holding it', () => {
    expect(markCoversFolder({ pid: 41, token: 'creator', writtenAt: WRITTEN_AT }, lock({ token: 'later', pid: 77 }))).toBe(false);
    // The same pid (a container's pid 1 restarted) is another acquisition all the same.
    expect(markCoversFolder({ pid: 41, token: 'creator', writtenAt: WRITTEN_AT }, lock({ token: 'later' }))).toBe(false);
    expect(markCoversFolder({ pid: 41, token: 'creator', writtenAt: WRITTEN_AT }, undefined)).toBe(false);
  });

  it("takes the previous version's mark (its pid alone) for the lock's process only when that process took the lock before writing it", () => {
    expect(markCoversFolder({ pid: 41, writtenAt: WRITTEN_AT }, lock())).toBe(true);
    expect(markCoversFolder({ pid: 41, writtenAt: WRITTEN_AT }, lock({ acquiredAt: '2026-12-01T10:05:00.000Z' }))).toBe(false);
    expect(markCoversFolder({ pid: 41, writtenAt: WRITTEN_AT }, lock({ pid: 77 }))).toBe(false);
    expect(markCoversFolder({ pid: 41, writtenAt: WRITTEN_AT }, undefined)).toBe(false);
  });
});

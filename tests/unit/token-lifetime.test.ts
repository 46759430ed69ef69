import { describe, expect, it } from 'vitest';
import { needsRenewal, renewalCooldownMs, stillValid } from '../../src/upstream/auth/token-lifetime.js';

const token = (lifeMs: number | undefined) => ({ value: 't', obtainedAt: 0, expiresAt: lifeMs === undefined ? undefined : lifeMs, scope: undefined });

describe('upstream token lifetime', () => {
  it('renews a long token 30 s before it ends, a short one in its last tenth', () => {
    const hour = token(3_600_000);
    expect(needsRenewal(hour, 3_569_999)).toBe(false);
    expect(needsRenewal(hour, 3_570_000)).toBe(true);
    const minute = token(60_000);
    expect(needsRenewal(minute, 53_999)).toBe(false);
    expect(needsRenewal(minute, 54_000)).toBe(true);
  });

  it('keeps a token of unknown lifetime until it is refused', () => {
    expect(needsRenewal(token(undefined), Number.MAX_SAFE_INTEGER)).toBe(false);
    expect(stillValid(token(undefined), Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('lets a token that could not be renewed serve until it expires', () => {
    expect(stillValid(token(60_000), 59_999)).toBe(true);
    expect(stillValid(token(60_000), 60_000)).toBe(false);
  });

  it('waits longer after each failed token request in a row, up to a minute', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(renewalCooldownMs)).toEqual([0, 5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
  });
});

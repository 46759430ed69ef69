import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LimitExceededError } from '../../src/limits/errors.js';
import { UserInstances } from '../../src/upstream/user-instances.js';

/** A slot whose server was replaced by a new definition leaves the books while its instance finishes its calls. */
describe('a detached user instance', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("frees its user's place at once, no longer counts for the caps, and is retired when its last request ends", () => {
    const instances = new UserInstances<string>({ idleSeconds: 10, maxPerUser: 1, maxTotal: 1 });
    const reaped: string[] = [];
    const { slot: old, started } = instances.reserve('s', 'alice', () => reaped.push('old'));
    started();
    const end = instances.use(old);
    expect(() => instances.reserve('s', 'bob', () => {})).toThrow(LimitExceededError);

    instances.detach(old);
    expect(instances.find('s', 'alice')).toBeUndefined();
    expect(instances.size).toBe(0);
    const retired: string[] = [];
    instances.retireWhenIdle(old, () => retired.push('old'));
    // The successor's instance takes the place (and the caps) while the old one finishes.
    const { slot: fresh, started: freshStarted } = instances.reserve('s', 'alice', () => reaped.push('fresh'));
    freshStarted();
    expect(instances.find('s', 'alice')).toBe(fresh);
    expect(() => instances.reserve('s', 'bob', () => {})).toThrow(LimitExceededError);

    expect(retired).toEqual([]);
    end();
    expect(retired).toEqual(['old']);
    // The old slot's release leaves the successor's on the books.
    expect(instances.release(old)).toBe(true);
    expect(instances.find('s', 'alice')).toBe(fresh);
    vi.advanceTimersByTime(10_000);
    expect(reaped).toEqual(['fresh']);
  });

  it('is never reaped for idleness once detached', () => {
    const instances = new UserInstances<string>({ idleSeconds: 10, maxPerUser: 2, maxTotal: 2 });
    const reaped: string[] = [];
    const { slot, started } = instances.reserve('s', 'alice', () => reaped.push('alice'));
    started();
    instances.detach(slot);
    // Neither the end of a request nor the release of a hold arms a timer for it again.
    instances.use(slot)();
    instances.hold(slot)();
    vi.advanceTimersByTime(60_000);
    expect(reaped).toEqual([]);
  });
});

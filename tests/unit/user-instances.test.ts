import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LimitExceededError } from '../../src/limits/errors.js';
import { UserInstances, type InstanceSlot } from '../../src/upstream/user-instances.js';

/** The bookkeeping alone: instances are plain labels here, the clock is vitest's. */
describe('user instances', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const limits = { idleSeconds: 10, maxPerUser: 2, maxTotal: 3 };

  it('hand an instance idle for idleSeconds to its onIdle, and not before', () => {
    const instances = new UserInstances<string>(limits);
    const idle: string[] = [];
    const { slot, started } = instances.reserve('s', 'alice', (s) => idle.push(`${s.server}/${s.user}`));
    // Starting counts as use: however long it takes, it is not idle.
    vi.advanceTimersByTime(60_000);
    expect(idle).toEqual([]);
    started();
    vi.advanceTimersByTime(9_999);
    expect(idle).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(idle).toEqual(['s/alice']);
    expect(slot.active).toBe(0);
  });

  it('count idleness from the last use: a request in flight, or a keep, puts it off', () => {
    const instances = new UserInstances<string>(limits);
    let reaped = 0;
    const { slot, started } = instances.reserve('s', 'alice', () => reaped++);
    started();
    vi.advanceTimersByTime(8_000);
    const end = instances.use(slot);
    vi.advanceTimersByTime(30_000);
    expect(reaped).toBe(0);
    end();
    end(); // a second end changes nothing
    expect(slot.active).toBe(0);
    vi.advanceTimersByTime(9_000);
    instances.keep(slot);
    vi.advanceTimersByTime(9_000);
    expect(reaped).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(reaped).toBe(1);
  });

  it('never reap with idleSeconds 0', () => {
    const instances = new UserInstances<string>({ ...limits, idleSeconds: 0 });
    let reaped = 0;
    instances.reserve('s', 'alice', () => reaped++).started();
    vi.advanceTimersByTime(10 * 86_400_000);
    expect(reaped).toBe(0);
  });

  it('refuse past maxPerUser (all servers together) and maxTotal, naming the cap, without touching other instances', () => {
    const instances = new UserInstances<string>(limits);
    instances.reserve('a', 'alice', () => {}).started();
    instances.reserve('b', 'alice', () => {}).started();
    expect(() => instances.reserve('c', 'alice', () => {})).toThrow(LimitExceededError);
    expect(() => instances.reserve('c', 'alice', () => {})).toThrow('user alice already has 2 instances (maxPerUser)');
    instances.reserve('a', 'bob', () => {}).started();
    expect(() => instances.reserve('b', 'bob', () => {})).toThrow(/already runs 3 per-user instances \(maxTotal\)/);
    expect(instances.all().map((s) => `${s.server}/${s.user}`)).toEqual(['a/alice', 'b/alice', 'a/bob']);
    // Released: room again.
    instances.release(instances.find('a', 'alice')!);
    expect(instances.reserve('c', 'alice', () => {}).slot.user).toBe('alice');
  });

  it('retire at once when nothing is in flight, else when the last request ends', () => {
    const instances = new UserInstances<string>(limits);
    const retired: string[] = [];
    const idle = instances.reserve('s', 'alice', () => {});
    idle.started();
    instances.retireWhenIdle(idle.slot, () => retired.push('idle'));
    expect(retired).toEqual(['idle']);
    const busy = instances.reserve('s', 'bob', () => {});
    busy.started();
    const end = instances.use(busy.slot);
    instances.retireWhenIdle(busy.slot, () => retired.push('busy'));
    expect(retired).toEqual(['idle']);
    end();
    expect(retired).toEqual(['idle', 'busy']);
  });

  it('call off a pending retire when the user comes back, reaping it for idleness only afterwards', () => {
    const instances = new UserInstances<string>(limits);
    const retired: string[] = [];
    let reaped = 0;
    const { slot, started } = instances.reserve('s', 'alice', () => reaped++);
    started();
    const end = instances.use(slot);
    // Her last session ended while a request was in flight: the stop waits for it...
    instances.retireWhenIdle(slot, () => retired.push('alice'));
    // ...and she opens a new session (or calls again) before it ends.
    instances.keep(slot);
    end();
    expect(retired).toEqual([]);
    vi.advanceTimersByTime(10_000);
    expect(reaped).toBe(1);
  });

  it('never reap an instance that is held (a resource subscription), and count idleness from the last release', () => {
    const instances = new UserInstances<string>(limits);
    let reaped = 0;
    const { slot, started } = instances.reserve('s', 'alice', () => reaped++);
    const release = instances.hold(slot);
    const second = instances.hold(slot);
    started();
    expect(slot.holds).toBe(2);
    // A request comes and goes while held: its end arms nothing that could reap.
    instances.use(slot)();
    vi.advanceTimersByTime(10 * 60_000);
    expect(reaped).toBe(0);
    release();
    release(); // a second release changes nothing
    vi.advanceTimersByTime(10 * 60_000);
    expect(reaped).toBe(0);
    second();
    expect(slot.holds).toBe(0);
    vi.advanceTimersByTime(9_999);
    expect(reaped).toBe(0);
    vi.advanceTimersByTime(1);
    expect(reaped).toBe(1);
  });

  it('still retire a held instance once its user has no session left', () => {
    const instances = new UserInstances<string>(limits);
    const retired: string[] = [];
    const { slot, started } = instances.reserve('s', 'alice', () => {});
    started();
    instances.hold(slot);
    instances.retireWhenIdle(slot, () => retired.push('alice'));
    expect(retired).toEqual(['alice']);
  });

  it('leave no timer behind once released or closed', () => {
    const instances = new UserInstances<string>(limits);
    let reaped = 0;
    const slots: InstanceSlot<string>[] = [];
    for (const user of ['alice', 'bob']) {
      const { slot, started } = instances.reserve('s', user, () => reaped++);
      started();
      slots.push(slot);
    }
    expect(vi.getTimerCount()).toBe(2);
    expect(instances.release(slots[0]!)).toBe(true);
    expect(instances.release(slots[0]!)).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    instances.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(instances.size).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(reaped).toBe(0);
  });
});

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fullAccess } from '../../src/auth/access-policy.js';
import { ANONYMOUS } from '../../src/auth/principal.js';
import { CallTracker } from '../../src/gateway/call-tracker.js';
import { detachedCall } from '../../src/gateway/forward.js';

const call = (sessionId?: string) => ({ ...detachedCall('mcp', fullAccess(ANONYMOUS)), sessionId });

describe('waiting for the calls in flight to end', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('resolves at once when nothing is in flight, and leaves no timer behind', async () => {
    const tracker = new CallTracker();
    await expect(tracker.idleWithin(5_000)).resolves.toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('resolves when the last call ends, before the deadline, and clears the deadline timer', async () => {
    const tracker = new CallTracker();
    const endA = tracker.begin('alpha', call('s1'));
    const endB = tracker.begin('beta', call('s2'));
    let settled: boolean | undefined;
    const waiting = tracker.idleWithin(10_000).then((v) => (settled = v));
    await vi.advanceTimersByTimeAsync(1_000);
    endA();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(settled).toBeUndefined();
    expect(tracker.size).toBe(1);
    endB();
    await waiting;
    expect(settled).toBe(true);
    expect(tracker.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives up at the deadline while a call is still in flight', async () => {
    const tracker = new CallTracker();
    tracker.begin('alpha', call('s1'));
    let settled: boolean | undefined;
    const waiting = tracker.idleWithin(3_000).then((v) => (settled = v));
    await vi.advanceTimersByTimeAsync(2_999);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await waiting;
    expect(settled).toBe(false);
    expect(tracker.size).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('counts a call ended twice once, so a double end cannot report idle early', async () => {
    const tracker = new CallTracker();
    const end = tracker.begin('alpha', call('s1'));
    tracker.begin('alpha', call('s1'));
    end();
    end();
    expect(tracker.size).toBe(1);
    let idle = false;
    void tracker.idle().then(() => (idle = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(idle).toBe(false);
  });

  it('wakes every waiter when the count reaches zero', async () => {
    const tracker = new CallTracker();
    const end = tracker.begin('alpha', call('s1'));
    const woken: number[] = [];
    const waiters = [1, 2, 3].map((n) => tracker.idle().then(() => woken.push(n)));
    end();
    await Promise.all(waiters);
    expect(woken).toEqual([1, 2, 3]);
  });
});

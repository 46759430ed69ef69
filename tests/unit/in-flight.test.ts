import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InFlightRequests } from '../../src/upstream/in-flight.js';

describe('requests in flight on a connection', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('is idle at once when nothing is in flight', async () => {
    expect(await new InFlightRequests().idleWithin(1000)).toBe(true);
  });

  it('becomes idle when the last request ends, each ending counted once', async () => {
    const requests = new InFlightRequests();
    const first = requests.begin();
    const second = requests.begin();
    let idle: boolean | undefined;
    void requests.idleWithin(10_000).then((result) => (idle = result));
    first();
    first();
    await vi.advanceTimersByTimeAsync(0);
    expect(requests.count).toBe(1);
    expect(idle).toBeUndefined();
    second();
    await vi.advanceTimersByTimeAsync(0);
    expect(idle).toBe(true);
    expect(requests.count).toBe(0);
  });

  it('gives up after the time allowed, and a later ending finds no waiter left', async () => {
    const requests = new InFlightRequests();
    const end = requests.begin();
    const waited = requests.idleWithin(500);
    await vi.advanceTimersByTimeAsync(500);
    expect(await waited).toBe(false);
    end();
    expect(await requests.idleWithin(500)).toBe(true);
  });
});

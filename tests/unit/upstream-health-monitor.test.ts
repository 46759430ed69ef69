import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js';
import { HealthMonitor } from '../../src/upstream/health-monitor.js';

/** An upstream whose pings are answered (after 10 ms) while `up` is true, and time out otherwise. */
function fakeUpstream() {
  const upstream = {
    up: true,
    ping: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) => setTimeout(() => (upstream.up ? resolve() : reject(new Error('timeout'))), upstream.up ? 10 : timeoutMs)),
  };
  return upstream;
}

describe('upstream health monitor and circuit breaker', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup(threshold = 3) {
    const breaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 30_000, now: () => Date.now() });
    const upstream = fakeUpstream();
    const events: string[] = [];
    const monitor = new HealthMonitor({
      intervalMs: 1000,
      timeoutMs: 500,
      failureThreshold: threshold,
      ping: upstream.ping,
      breaker,
      onChange: () => events.push(`change:${monitor.failures}`),
      onDead: (reason) => events.push(`dead:${reason}`),
    });
    return { breaker, upstream, events, monitor };
  }

  it('closes a breaker opened by unreachability at the first answered ping, long before its cooldown', async () => {
    const { breaker, events, monitor } = setup();
    breaker.failure('unreachable');
    breaker.failure('unreachable');
    expect(breaker.state).toBe('open');
    monitor.start();
    await vi.advanceTimersByTimeAsync(1010);
    expect(breaker.state).toBe('closed');
    expect(events).toEqual(['change:0']);
    monitor.stop();
  });

  it('keeps a breaker opened by timeouts open on answered pings (the tool is slow, not the upstream)', async () => {
    const { breaker, monitor } = setup();
    breaker.failure('fault');
    breaker.failure('unreachable');
    monitor.start();
    await vi.advanceTimersByTimeAsync(5000);
    expect(breaker.state).toBe('open');
    await vi.advanceTimersByTimeAsync(25_000);
    expect(breaker.state).toBe('half-open');
    monitor.stop();
  });

  it('after unanswered pings, the first answered one clears the failures and closes a breaker opened by unreachable failures', async () => {
    const { breaker, upstream, events, monitor } = setup();
    upstream.up = false;
    monitor.start();
    breaker.failure('unreachable');
    breaker.failure('unreachable');
    await vi.advanceTimersByTimeAsync(1500);
    expect(monitor.failures).toBe(1);
    upstream.up = true;
    await vi.advanceTimersByTimeAsync(1010);
    expect(monitor.failures).toBe(0);
    expect(breaker.state).toBe('closed');
    expect(events).toEqual(['change:1', 'change:0']);
    monitor.stop();
  });

  it('leaves a breaker opened by slow answers open when a ping is answered after unanswered ones', async () => {
    const { breaker, upstream, monitor } = setup();
    upstream.up = false;
    monitor.start();
    breaker.failure('fault');
    breaker.failure('fault');
    await vi.advanceTimersByTimeAsync(1500);
    upstream.up = true;
    await vi.advanceTimersByTimeAsync(1010);
    expect(monitor.failures).toBe(0);
    expect(breaker.state).toBe('open');
    monitor.stop();
  });

  it('declares the connection dead after the threshold of unanswered pings, once, and stops', async () => {
    const { upstream, events, monitor } = setup(2);
    upstream.up = false;
    monitor.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events).toEqual(['change:1', 'dead:no answer to 2 pings']);
  });

  it('does not pile pings up behind a slow one', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 30_000 });
    let sent = 0;
    const monitor = new HealthMonitor({
      intervalMs: 100,
      timeoutMs: 1000,
      failureThreshold: 3,
      ping: () => {
        sent++;
        return new Promise((resolve) => setTimeout(resolve, 950));
      },
      breaker,
      onChange: () => {},
      onDead: () => {},
    });
    monitor.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent).toBe(1);
    monitor.stop();
  });
});

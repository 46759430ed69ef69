import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STABLE_AFTER_MS } from '../../src/upstream/backoff.js';
import { ConnectionLifecycle } from '../../src/upstream/connection-lifecycle.js';

const START = Date.UTC(2026, 0, 1);

/** A lifecycle on the fake clock; `told` records each state it reported and each restart. */
function lifecycle(options: { enabled?: boolean; maxAttempts?: number } = {}) {
  const told: string[] = [];
  const life: ConnectionLifecycle = new ConnectionLifecycle({
    reconnect: { initialDelayMs: 1000, maxDelayMs: 8000, maxAttempts: options.maxAttempts ?? 0 },
    now: () => Date.now(),
    enabled: options.enabled ?? true,
    onChange: () => told.push(life.state),
    onRestart: () => told.push('restart'),
  });
  return { life, told };
}

describe('connection lifecycle', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
  });
  afterEach(() => vi.useRealTimers());

  it('tells each change of state and every ready, and counts uptime from ready', async () => {
    const { life, told } = lifecycle();
    expect(life.state).toBe('connecting');
    const first = life.begin();
    await vi.advanceTimersByTimeAsync(250);
    life.ready();
    expect(life.connectedAt).toEqual(new Date(START + 250));
    const retrying = life.lost(first);
    expect(retrying).toBe(first + 1);
    expect(life.connectedAt).toBeUndefined();
    expect(life.retry(retrying!, () => life.begin())).toBe('armed');
    await vi.advanceTimersByTimeAsync(1000);
    // The retry leaves the state at `down` until it succeeds; a ready after a reconnect is told again.
    expect(life.state).toBe('down');
    life.ready();
    expect(told).toEqual(['ready', 'down', 'restart', 'ready']);
  });

  it('runs a retry after the backoff delay, and only while nothing newer began', async () => {
    const { life } = lifecycle();
    life.begin();
    let attempts = 0;
    expect(life.retry(life.failed(), () => attempts++)).toBe('armed');
    // The first delay is between half and all of initialDelayMs (equal jitter).
    const due = life.nextRetryAt!.getTime() - START;
    expect(due).toBeGreaterThanOrEqual(500);
    expect(due).toBeLessThanOrEqual(1000);
    await vi.advanceTimersByTimeAsync(due - 1);
    expect(attempts).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(1);

    life.begin();
    expect(life.retry(life.failed(), () => attempts++)).toBe('armed');
    life.begin();
    await vi.advanceTimersByTimeAsync(8000);
    expect(attempts).toBe(1);
  });

  it('ignores the loss of a session that is no longer current', () => {
    const { life } = lifecycle();
    const first = life.begin();
    life.ready();
    const retrying = life.lost(first)!;
    life.retry(retrying, () => undefined);
    const second = life.begin();
    life.ready();
    // The first session's client closing late, or its last ping failing: nothing changes.
    expect(life.lost(first)).toBeUndefined();
    expect(life.lost(retrying)).toBeUndefined();
    expect(life.current(second)).toBe(true);
    expect(life.state).toBe('ready');
    expect(life.connectedAt).toEqual(new Date(START));
    life.stop();
  });

  it('after stop, cancels the armed retry and heeds no loss or retry', async () => {
    const { life, told } = lifecycle();
    const first = life.begin();
    life.ready();
    let attempts = 0;
    const retrying = life.lost(first)!;
    expect(life.retry(retrying, () => attempts++)).toBe('armed');
    life.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(attempts).toBe(0);
    expect(life.startable).toBe(false);
    expect(life.current(retrying)).toBe(false);
    expect(life.lost(life.generation)).toBeUndefined();
    expect(life.retry(life.generation, () => attempts++)).toBe('superseded');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(attempts).toBe(0);
    expect(told).toEqual(['ready', 'down']);
  });

  it('gives up once maxAttempts attempts in a row failed', async () => {
    const { life, told } = lifecycle({ maxAttempts: 2 });
    life.begin();
    for (let i = 0; i < 2; i++) {
      expect(life.retry(life.failed(), () => life.begin())).toBe('armed');
      await vi.advanceTimersByTimeAsync(8000);
    }
    expect(life.retry(life.failed(), () => life.begin())).toBe('gave-up');
    expect(life.failures).toBe(2);
    expect(life.nextRetryAt).toBeUndefined();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(told).toEqual(['down', 'restart', 'restart']);
  });

  it('gives a session that stayed up STABLE_AFTER_MS a fresh budget, and keeps counting for a shorter one', async () => {
    for (const uptime of [STABLE_AFTER_MS, STABLE_AFTER_MS - 1]) {
      const { life } = lifecycle({ maxAttempts: 1 });
      life.begin();
      expect(life.retry(life.failed(), () => life.begin())).toBe('armed');
      await vi.advanceTimersByTimeAsync(8000);
      life.ready();
      await vi.advanceTimersByTimeAsync(uptime);
      const retrying = life.lost(life.generation)!;
      expect(life.failures).toBe(uptime === STABLE_AFTER_MS ? 0 : 1);
      expect(life.retry(retrying, () => life.begin())).toBe(uptime === STABLE_AFTER_MS ? 'armed' : 'gave-up');
      life.stop();
    }
  });

  it('moves a connection that cannot be helped by retrying to misconfigured', () => {
    const { life, told } = lifecycle();
    life.begin();
    life.failed();
    life.misconfigured();
    expect(life.state).toBe('misconfigured');
    expect(life.nextRetryAt).toBeUndefined();
    expect(told).toEqual(['misconfigured']);
  });

  it('keeps a disabled server disabled and not startable', () => {
    const { life, told } = lifecycle({ enabled: false });
    expect(life.state).toBe('disabled');
    expect(life.startable).toBe(false);
    life.begin();
    life.ready();
    life.retry(life.failed(), () => undefined);
    expect(life.state).toBe('disabled');
    expect(told).toEqual([]);
    life.stop();
  });
});

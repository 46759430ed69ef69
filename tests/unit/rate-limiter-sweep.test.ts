import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryRateLimiter } from '../../src/limits/rate-limiter.js';

const HOUR = 3_600_000;

describe('memory rate limiter sweep', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000 * 3 * HOUR); // the start of a 3 h window
  });
  afterEach(() => vi.useRealTimers());

  it('keeps a window longer than two hours until the window has passed', async () => {
    const limiter = new MemoryRateLimiter(() => Date.now());
    try {
      expect((await limiter.hit('long', 2, 3 * HOUR)).allowed).toBe(true);
      expect((await limiter.hit('long', 2, 3 * HOUR)).allowed).toBe(true);
      // The sweeper runs every minute through these 2.5 hours.
      await vi.advanceTimersByTimeAsync(2.5 * HOUR);
      const refused = await limiter.hit('long', 2, 3 * HOUR);
      expect(refused.allowed).toBe(false);
      expect(refused.retryAfterSeconds).toBe(0.5 * 3600);
      expect((await limiter.peek('long', 2, 3 * HOUR)).allowed).toBe(false);
    } finally {
      await limiter.close();
    }
  });

  it('keeps a long window as the previous window while it still weighs', async () => {
    const limiter = new MemoryRateLimiter(() => Date.now());
    try {
      for (let i = 0; i < 4; i++) expect((await limiter.hit('prev', 4, 3 * HOUR)).allowed).toBe(true);
      // An hour into the next window the four old hits still weigh 4 * 2/3.
      await vi.advanceTimersByTimeAsync(4 * HOUR);
      expect((await limiter.hit('prev', 4, 3 * HOUR)).allowed).toBe(true);
      expect((await limiter.hit('prev', 4, 3 * HOUR)).allowed).toBe(false);
    } finally {
      await limiter.close();
    }
  });

  it('forgets a short window once two of its windows have passed', async () => {
    const limiter = new MemoryRateLimiter(() => Date.now());
    try {
      for (let i = 0; i < 3; i++) await limiter.hit('short', 3, 60_000);
      expect((await limiter.hit('short', 3, 60_000)).allowed).toBe(false);
      await vi.advanceTimersByTimeAsync(2 * 60_000);
      expect((await limiter.peek('short', 1, 60_000)).allowed).toBe(true);
    } finally {
      await limiter.close();
    }
  });
});

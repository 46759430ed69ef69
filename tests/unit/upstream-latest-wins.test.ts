import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LatestWins } from '../../src/upstream/latest-wins.js';

/** A fetch answered after `ms` on the fake clock. */
const answerAfter = <T>(ms: number, value: T) => () => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe('list synchroniser (newest request wins)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('keeps the newer list when the older request answers last', async () => {
    const sync = new LatestWins();
    let applied: string[] = [];
    const first = sync.run(answerAfter(300, ['old']), (v) => (applied = v));
    const second = sync.run(answerAfter(100, ['new']), (v) => (applied = v));
    await vi.advanceTimersByTimeAsync(100);
    expect(applied).toEqual(['new']);
    await vi.advanceTimersByTimeAsync(200);
    expect(await first).toBe(false);
    expect(await second).toBe(true);
    expect(applied).toEqual(['new']);
  });

  it('applies answers that arrive in order, and drops all in flight after invalidate', async () => {
    const sync = new LatestWins();
    const applied: string[] = [];
    expect(await Promise.all([sync.run(async () => 'a', (v) => applied.push(v))])).toEqual([true]);
    const pending = sync.run(answerAfter(50, 'b'), (v) => applied.push(v));
    sync.invalidate();
    await vi.advanceTimersByTimeAsync(50);
    expect(await pending).toBe(false);
    expect(applied).toEqual(['a']);
  });

  it('keeps an older answer when the newer request fails: the list is not left stale', async () => {
    const sync = new LatestWins();
    const applied: string[] = [];
    const older = sync.run(answerAfter(200, 'older'), (v) => applied.push(v));
    const newer = sync.run(() => new Promise<string>((_, reject) => setTimeout(() => reject(new Error('boom')), 100)), (v) => applied.push(v));
    const newerOutcome = newer.catch((e: Error) => e.message);
    await vi.advanceTimersByTimeAsync(200);
    expect(await newerOutcome).toBe('boom');
    expect(await older).toBe(true);
    expect(applied).toEqual(['older']);
  });

  it('drops every answer in flight once invalidated', async () => {
    const sync = new LatestWins();
    const applied: string[] = [];
    const stale = sync.run(answerAfter(100, 'stale'), (v) => applied.push(v));
    sync.invalidate();
    await vi.advanceTimersByTimeAsync(100);
    expect(await stale).toBe(false);
    expect(applied).toEqual([]);
  });
});

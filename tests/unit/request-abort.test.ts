import { afterEach, describe, expect, it, vi } from 'vitest';
import { pause, RequestAbort } from '../../src/upstream/request-abort.js';

describe('giving up the HTTP requests of one upstream request', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells each listener the reason once, and keeps the first reason', () => {
    const abort = new RequestAbort();
    const heard: unknown[] = [];
    abort.onAbort((reason) => heard.push(['first', reason]));
    const stop = abort.onAbort((reason) => heard.push(['stopped', reason]));
    abort.onAbort((reason) => heard.push(['third', reason]));
    stop();
    expect(abort.aborted).toBe(false);
    const reason = new Error('request cancelled');
    abort.abort(reason);
    abort.abort(new Error('transport closed'));
    expect(abort.aborted).toBe(true);
    expect(abort.reason).toBe(reason);
    expect(heard).toEqual([
      ['first', reason],
      ['third', reason],
    ]);
  });

  it('aborted without a reason, gives an AbortError as AbortController does', () => {
    const abort = new RequestAbort();
    abort.abort(undefined);
    const controller = new AbortController();
    controller.abort();
    expect(abort.reason).toBeInstanceOf(DOMException);
    expect((abort.reason as DOMException).name).toBe((controller.signal.reason as DOMException).name);
  });

  it('pauses for the time given, or until aborted', async () => {
    vi.useFakeTimers();
    const abort = new RequestAbort();
    let waited = false;
    const waiting = pause(1000, abort).then(() => (waited = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(waited).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await waiting;
    expect(waited).toBe(true);

    const cut = pause(60_000, abort).then(() => 'ended');
    abort.abort(new Error('given up'));
    expect(await cut).toBe('ended');
    expect(vi.getTimerCount()).toBe(0);
    expect(await pause(60_000, abort).then(() => 'at once')).toBe('at once');
  });
});

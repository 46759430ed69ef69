import { describe, expect, it } from 'vitest';
import { OrderedParts, type Part } from '../../src/lifecycle.js';
import { capturedLog } from '../helpers/captured-log.js';

interface Line {
  level: number;
  msg: string;
  part?: string;
  err?: { message: string };
}

/** Parts that write what happens to them into `events`, in order. */
function recording(events: string[], names: string[], options: { withoutStart?: string[]; failToStart?: string; failToStop?: string[] } = {}): Part[] {
  return names.map((name) => ({
    name,
    start: options.withoutStart?.includes(name)
      ? undefined
      : async () => {
          await Promise.resolve();
          if (name === options.failToStart) throw new Error(`${name} cannot start`);
          events.push(`start ${name}`);
        },
    stop: async () => {
      await Promise.resolve();
      events.push(`stop ${name}`);
      if (options.failToStop?.includes(name)) throw new Error(`${name} cannot stop`);
    },
  }));
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('OrderedParts', () => {
  it('starts the parts in the order listed and stops them in the reverse order', async () => {
    const events: string[] = [];
    const { logger, lines } = capturedLog<Line>();
    const parts = new OrderedParts(recording(events, ['a', 'b', 'c', 'd'], { withoutStart: ['b'] }), logger);
    expect(parts.running).toEqual(['b']);
    await parts.start();
    expect(parts.running).toEqual(['a', 'b', 'c', 'd']);
    await parts.stop();
    expect(events).toEqual(['start a', 'start c', 'start d', 'stop d', 'stop c', 'stop b', 'stop a']);
    expect(parts.running).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('waits for each stop before the next one begins', async () => {
    const events: string[] = [];
    const slow = deferred();
    const parts = new OrderedParts(
      [
        { name: 'first', stop: () => events.push('stop first') },
        {
          name: 'second',
          stop: async () => {
            events.push('stop second begins');
            await slow.promise;
            events.push('stop second ends');
          },
        },
      ],
      capturedLog().logger,
    );
    const stopping = parts.stop();
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual(['stop second begins']);
    slow.resolve();
    await stopping;
    expect(events).toEqual(['stop second begins', 'stop second ends', 'stop first']);
  });

  it('lets a second stop during the first wait for it, so nothing is stopped out of order', async () => {
    const events: string[] = [];
    const slow = deferred();
    const parts = new OrderedParts(
      [
        { name: 'first', stop: () => events.push('stop first') },
        { name: 'second', stop: async () => (events.push('stop second begins'), await slow.promise, events.push('stop second ends')) },
      ],
      capturedLog().logger,
    );
    const one = parts.stop();
    const two = parts.stop().then(() => events.push('second call returns'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual(['stop second begins']);
    slow.resolve();
    await Promise.all([one, two]);
    expect(events).toEqual(['stop second begins', 'stop second ends', 'stop first', 'second call returns']);
  });

  it('stops what was started, last first, when a part fails to start, and rejects with its error', async () => {
    const events: string[] = [];
    const { logger, lines } = capturedLog<Line>();
    const parts = new OrderedParts(recording(events, ['a', 'b', 'c', 'd', 'e'], { withoutStart: ['b', 'e'], failToStart: 'd' }), logger);
    await expect(parts.start()).rejects.toThrow('d cannot start');
    // `e` runs since it was built, so it is stopped too; `d` failed and cleans up after itself.
    expect(events).toEqual(['start a', 'start c', 'stop e', 'stop c', 'stop b', 'stop a']);
    expect(parts.running).toEqual([]);
    expect(lines.map((line) => [line.level, line.part, line.msg])).toEqual([[50, 'd', 'd failed to start; stopping the parts started before it']]);
    // A stop after the failed start (as a caller's cleanup does) stops nothing twice.
    await parts.stop();
    expect(events).toHaveLength(6);
  });

  it('runs every stop past one that throws, logs each failure, and rejects once all have run', async () => {
    const events: string[] = [];
    const { logger, lines } = capturedLog<Line>();
    const parts = new OrderedParts(recording(events, ['a', 'b', 'c'], { failToStop: ['b'] }), logger);
    await parts.start();
    await expect(parts.stop()).rejects.toThrow('b cannot stop');
    expect(events).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(lines.map((line) => [line.level, line.part, line.msg, line.err?.message])).toEqual([[50, 'b', 'b failed to stop', 'b cannot stop']]);
  });

  it('rejects with every failure when several parts fail to stop, each stopped once', async () => {
    const events: string[] = [];
    const { logger, lines } = capturedLog<Line>();
    const parts = new OrderedParts(recording(events, ['a', 'b', 'c'], { withoutStart: ['a', 'b', 'c'], failToStop: ['a', 'c'] }), logger);
    const failure = await parts.stop().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(AggregateError);
    expect((failure as AggregateError).message).toBe('2 parts failed to stop: c, a');
    expect((failure as AggregateError).errors.map((error: Error) => error.message)).toEqual(['c cannot stop', 'a cannot stop']);
    expect(events).toEqual(['stop c', 'stop b', 'stop a']);
    expect(lines.map((line) => line.part)).toEqual(['c', 'a']);
    await parts.stop();
    expect(events).toHaveLength(3);
  });

  it('stops a start under way only once it has ended, so no part starts after the stop passed it', async () => {
    const events: string[] = [];
    const gate = deferred();
    const parts = new OrderedParts(
      [
        { name: 'a', start: () => events.push('start a'), stop: () => events.push('stop a') },
        {
          name: 'b',
          start: async () => {
            await gate.promise;
            events.push('start b');
          },
          stop: () => events.push('stop b'),
        },
        { name: 'c', start: () => events.push('start c'), stop: () => events.push('stop c') },
      ],
      capturedLog().logger,
    );
    const starting = parts.start();
    const stopping = parts.stop();
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual(['start a']);
    gate.resolve();
    await Promise.all([starting, stopping]);
    expect(events).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(parts.running).toEqual([]);
  });

  it('starts once: a second start returns the first one', async () => {
    const events: string[] = [];
    const parts = new OrderedParts(recording(events, ['a']), capturedLog().logger);
    await Promise.all([parts.start(), parts.start()]);
    expect(events).toEqual(['start a']);
  });
});

import { describe, expect, it } from 'vitest';
import { databaseReadiness } from '../../src/http/database-readiness.js';
import { capturedLog } from '../helpers/captured-log.js';

interface LogLine {
  level: number;
  msg: string;
  err?: { message?: string };
}

/** An error as the PostgreSQL driver throws it: a SQLSTATE in `code`, a message naming the database. */
function driverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('/ready: the database check', () => {
  it('logs when the database stops answering and when it answers again, not at every probe', async () => {
    const { logger, lines } = capturedLog<LogLine>();
    // What the database does at each probe, in order: answers, fails three times, answers twice, fails.
    const outcomes = ['ok', 'down', 'down', 'down', 'ok', 'ok', 'down'];
    let probe = 0;
    const check = databaseReadiness(async () => {
      if (outcomes[probe++] === 'down') throw driverError('3D000', 'database "conflux_secret" does not exist');
    }, logger);

    const answers: string[] = [];
    for (let i = 0; i < outcomes.length; i++) answers.push(await check());

    expect(answers).toEqual(['ok', 'unavailable (3D000)', 'unavailable (3D000)', 'unavailable (3D000)', 'ok', 'ok', 'unavailable (3D000)']);
    expect(lines.map((l) => l.msg)).toEqual([
      'not ready: the database does not answer',
      'ready: the database answers again',
      'not ready: the database does not answer',
    ]);
    // The driver's message is the operator's, in the log; a warning for the outage, information for its end.
    expect(lines[0]!.err?.message).toBe('database "conflux_secret" does not exist');
    expect(lines.map((l) => l.level)).toEqual([40, 30, 40]);
  });

  it('says "unavailable" alone for an error without a driver code', async () => {
    const { logger } = capturedLog<LogLine>();
    const check = databaseReadiness(() => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.5:5432 as user admin')), logger);
    expect(await check()).toBe('unavailable');
  });
});

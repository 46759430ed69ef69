import { Writable } from 'node:stream';
import { pino, type Level, type Logger } from 'pino';

/**
 * A real pino logger at `level` whose lines are kept parsed, in order, in `lines`: a test can
 * then assert on what the code logged (its message, level and fields) rather than on its output.
 */
export function capturedLog<Line = Record<string, unknown>>(level: Level = 'debug'): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Line);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

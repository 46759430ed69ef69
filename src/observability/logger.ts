import { pino, type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import type { LogFormat } from '../config/env.js';

export interface LoggerOptions {
  /** Fields on every line (a worker's id and pid). */
  labels?: Record<string, string | number> | undefined;
  /** `pretty` or `json`; unset: pretty on a terminal, JSON otherwise (`chooseLogFormat`). */
  format?: LogFormat | undefined;
  /** Whether the destination is a terminal: the CLI passes `process.stderr.isTTY`. */
  terminal?: boolean | undefined;
  /** Where lines go; default stderr (stdout stays free for CLI output). */
  destination?: NodeJS.WritableStream | undefined;
}

/** The format asked for, else pretty for a person at a terminal and JSON for anything collecting logs. */
export function chooseLogFormat(requested: LogFormat | undefined, terminal: boolean): LogFormat {
  return requested ?? (terminal ? 'pretty' : 'json');
}

/**
 * Structured logs: JSON lines by default, or one readable line per entry (level name, local
 * ISO time, colour on a terminal) when `chooseLogFormat` says pretty. Both write synchronously,
 * so the lines logged just before an exit are not lost.
 */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const format = chooseLogFormat(options.format, options.terminal === true);
  return pino(
    {
      level,
      base: { service: 'conflux', ...options.labels },
      redact: { paths: ['headers.authorization', 'headers["x-api-key"]', '*.token', '*.password', '*.secret'], censor: '[redacted]' },
    },
    // `pino.destination(2)` alone writes asynchronously: a line logged just before an exit
    // (the fatal one saying why) could still be in flight and be lost.
    format === 'pretty' ? prettyStream(options) : (options.destination ?? pino.destination({ dest: 2, sync: true })),
  );
}

/**
 * pino-pretty as a stream in this process, not a transport worker: a worker thread would lose
 * what was logged just before `process.exit`.
 */
function prettyStream(options: LoggerOptions): DestinationStream {
  return pinoPretty({
    destination: options.destination ?? 2,
    sync: true,
    colorize: options.terminal === true,
    // Local time with its offset: what a person compares with their clock, unambiguous in a paste.
    translateTime: "SYS:yyyy-mm-dd'T'HH:MM:ss.lp",
    ignore: 'service',
    // A line per entry, as a terminal reader scans them; error stacks still get their own lines.
    singleLine: true,
  });
}

/** A logger that drops everything, for tests and quiet CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

import { pino, type Logger } from 'pino';

/** Structured JSON logs on stderr (stdout stays free for CLI output). */
export function createLogger(level: string, labels: Record<string, string | number> = {}): Logger {
  return pino(
    {
      level,
      base: { service: 'conflux', ...labels },
      redact: { paths: ['headers.authorization', 'headers["x-api-key"]', '*.token', '*.password', '*.secret'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

/** A logger that drops everything, for tests and quiet CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

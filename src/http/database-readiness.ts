import type { Logger } from 'pino';

/** A driver's error code: a SQLSTATE (`57P01`) or a socket's (`ECONNREFUSED`), never free text. */
const ERROR_CODE = /^[A-Z0-9_]{1,40}$/;

/**
 * `/ready`'s check of the database: `ok`, or `unavailable` with the driver's error code when it
 * has one. Never the driver's message: `/ready` is unauthenticated, and the message may name
 * hosts, users or SQL. The whole error goes to the log, for the operator, when the database
 * stops answering, and a line says when it answers again: an orchestrator probes every few
 * seconds, and a line per probe would bury the one that says when the outage began.
 */
export function databaseReadiness(ready: () => Promise<void>, logger: Pick<Logger, 'warn' | 'info'>): () => Promise<string> {
  let down = false;
  return () =>
    ready().then(
      () => {
        if (down) logger.info('ready: the database answers again');
        down = false;
        return 'ok';
      },
      (error: unknown) => {
        if (!down) logger.warn({ err: error }, 'not ready: the database does not answer');
        down = true;
        const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
        return typeof code === 'string' && ERROR_CODE.test(code) ? `unavailable (${code})` : 'unavailable';
      },
    );
}

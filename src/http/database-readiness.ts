import type { Logger } from 'pino';

/** A driver's error code: a SQLSTATE (`57P01`) or a socket's (`ECONNREFUSED`), never free text. */
const ERROR_CODE = /^[A-Z0-9_]{1,40}$/;

/**
 * What `/ready` says of a database that did not answer: `unavailable`, with the driver's error
 * code when it has one. Never the driver's message: `/ready` is unauthenticated, and the message
 * may name hosts, users or SQL. The whole error goes to the log, for the operator.
 */
export function databaseNotReady(error: unknown, logger: Pick<Logger, 'warn'>): string {
  logger.warn({ err: error }, 'not ready: the database does not answer');
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && ERROR_CODE.test(code) ? `unavailable (${code})` : 'unavailable';
}

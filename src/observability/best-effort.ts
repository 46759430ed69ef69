import type { Logger } from 'pino';

/** How loud a failed best-effort step is: `debug` when nobody needs to act, `warn` when an operator might. */
export type BestEffortLevel = 'debug' | 'warn';

/**
 * Runs or awaits a step whose failure is ignorable (closing something already gone, a
 * notification to a client that left) and logs the failure at `level` with `what` was
 * attempted, instead of swallowing it silently. Never rejects and never throws, so callers
 * may `void` it or await it in cleanup paths; a function form also catches a synchronous throw.
 */
export function bestEffort(
  attempt: PromiseLike<unknown> | (() => PromiseLike<unknown> | unknown),
  logger: Pick<Logger, BestEffortLevel>,
  what: string,
  level: BestEffortLevel = 'debug',
): Promise<void> {
  const failed = (err: unknown) => {
    try {
      logger[level]({ err }, `best effort failed: ${what}`);
    } catch {
      // A logger that throws (a closed destination) must not turn cleanup into a failure.
    }
  };
  try {
    const running = typeof attempt === 'function' ? attempt() : attempt;
    return Promise.resolve(running).then(() => undefined, failed);
  } catch (error) {
    failed(error);
    return Promise.resolve();
  }
}

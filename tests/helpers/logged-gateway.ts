import type { Config } from '../../src/config/schema.js';
import type { AuditEvent } from '../../src/store/audit-repository.js';
import { capturedLog } from './captured-log.js';
import { startGateway, type RunningGateway } from './gateway.js';

/** A gateway whose log (debug and up) is kept in memory, parsed, for a test to read. */
export interface LoggedGateway extends RunningGateway {
  /** Every line logged so far, in order. */
  readonly lines: readonly Record<string, unknown>[];
  /** The audit rows written so far (without a database the audit trail goes to the log). */
  auditRows(): (Omit<AuditEvent, 'at'> & { at: string })[];
}

/**
 * Starts a gateway without a database, as `startGateway` does, but logging at debug into memory:
 * its audit rows and per-call debug lines can then be asserted on. Stopped by `stop()` even
 * when starting fails.
 */
export async function startLoggedGateway(config: Config): Promise<LoggedGateway> {
  const { logger, lines } = capturedLog();
  const gateway = await startGateway(config, { logger });
  return {
    ...gateway,
    lines,
    auditRows: () => lines.filter((line) => line.msg === 'audit').map((line) => line.audit as Omit<AuditEvent, 'at'> & { at: string }),
  };
}

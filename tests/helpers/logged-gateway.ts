import { pino } from 'pino';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import type { AuditEvent } from '../../src/store/audit-repository.js';

/** A gateway whose log (debug and up) is kept in memory, parsed, for a test to read. */
export interface LoggedGateway {
  conflux: Conflux;
  url: string;
  /** Every line logged so far, in order. */
  readonly lines: readonly Record<string, unknown>[];
  /** The audit rows written so far (without a database the audit trail goes to the log). */
  auditRows(): (Omit<AuditEvent, 'at'> & { at: string })[];
  stop(): Promise<void>;
}

/**
 * Starts a gateway without a database, as `startGateway` does, but logging at debug into memory:
 * its audit rows and per-call debug lines can then be asserted on. Stopped by `stop()` even
 * when starting fails.
 */
export async function startLoggedGateway(config: Config): Promise<LoggedGateway> {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const conflux = createConflux(config, { logger });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= conflux.stop());
  try {
    await conflux.start();
    const { url } = await conflux.listen('127.0.0.1', 0);
    await conflux.upstreams.settled(15_000);
    return {
      conflux,
      url,
      lines,
      auditRows: () => lines.filter((line) => line.msg === 'audit').map((line) => line.audit as Omit<AuditEvent, 'at'> & { at: string }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

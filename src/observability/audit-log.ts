import type { Logger } from 'pino';
import type { AuditEvent, AuditRepository } from '../store/audit-repository.js';

export interface AuditLogOptions {
  /** Where events are stored; without one they go to the log only. */
  repository?: AuditRepository | undefined;
  logger: Logger;
  /** Argument keys matching any of these (case-insensitive) are stored as "[redacted]". */
  redactKeys: readonly string[];
  capacity: number;
  flushIntervalMs?: number;
  batchSize?: number;
}

const REDACTED = '[redacted]';

/**
 * Buffered audit writer. `record` never blocks or fails the call it describes: events wait in
 * memory and are written in batches. When the buffer is full (the database is slow or down),
 * new events are counted as dropped and the count is logged, never silently lost; so is an
 * event the database refuses for its content, which would otherwise block every batch after it.
 */
export class AuditLog {
  readonly #options: AuditLogOptions;
  readonly #redact: RegExp;
  #buffer: AuditEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #dropped = 0;
  #droppedReported = 0;
  #written = 0;

  constructor(options: AuditLogOptions) {
    this.#options = options;
    this.#redact = new RegExp(options.redactKeys.map((k) => `(?:${k})`).join('|') || '(?!)', 'i');
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  get stats(): { buffered: number; dropped: number; written: number } {
    return { buffered: this.#buffer.length, dropped: this.#dropped, written: this.#written };
  }

  record(event: Omit<AuditEvent, 'at'> & { at?: Date }): void {
    const complete: AuditEvent = { ...event, at: event.at ?? new Date(), arguments: this.redact(event.arguments) };
    if (!this.#options.repository) {
      this.#options.logger.info({ audit: complete }, 'audit');
      return;
    }
    if (this.#buffer.length >= this.#options.capacity) {
      this.#dropped++;
      return;
    }
    this.#buffer.push(complete);
    if (this.#buffer.length >= (this.#options.batchSize ?? 200)) void this.flush();
  }

  /** Arguments with secret-looking keys replaced, at any depth. */
  redact(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.redact(v));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.#redact.test(k) ? REDACTED : this.redact(v)]));
    }
    return value;
  }

  /** Writes what is buffered; concurrent calls share one write. */
  flush(): Promise<void> {
    this.#flushing ??= this.#write().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  async #write(): Promise<void> {
    this.#reportDrops();
    const repository = this.#options.repository;
    while (repository && this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#options.batchSize ?? 200);
      try {
        await repository.insertMany(batch);
        this.#written += batch.length;
      } catch (error) {
        // A batch refused for its data holds a row the database will never take; retried whole
        // it would block the trail for good. Row by row, only the refused rows are dropped.
        const unwritten = isDataError(error) ? await this.#rowByRow(repository, batch) : batch;
        if (unwritten.length === 0) continue;
        // The database is unreachable or failing: keep what fits and try again at the next flush.
        const room = this.#options.capacity - this.#buffer.length;
        this.#buffer.unshift(...unwritten.slice(0, Math.max(0, room)));
        this.#dropped += Math.max(0, unwritten.length - room);
        this.#options.logger.warn({ err: (error as Error).message, buffered: this.#buffer.length }, 'audit write failed; will retry');
        return;
      }
    }
  }

  /** Writes `batch` one row at a time, dropping rows refused for their data; returns what is left when the database fails otherwise. */
  async #rowByRow(repository: AuditRepository, batch: AuditEvent[]): Promise<AuditEvent[]> {
    for (let i = 0; i < batch.length; i++) {
      try {
        await repository.insertMany([batch[i]!]);
        this.#written++;
      } catch (error) {
        if (!isDataError(error)) return batch.slice(i);
        this.#dropped++;
        this.#options.logger.warn({ err: (error as Error).message, kind: batch[i]!.kind, target: batch[i]!.target }, 'audit event refused by the database: dropped');
      }
    }
    return [];
  }

  #reportDrops(): void {
    if (this.#dropped > this.#droppedReported) {
      this.#options.logger.warn({ dropped: this.#dropped - this.#droppedReported, total: this.#dropped }, 'audit events dropped (buffer full, or refused by the database)');
      this.#droppedReported = this.#dropped;
    }
  }
}

/** A refusal of the data itself (SQLSTATE classes 22 and 23), not of the connection or the server. */
function isDataError(error: unknown): boolean {
  for (let e = error; e instanceof Object; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^2[23]/.test(code)) return true;
  }
  return false;
}

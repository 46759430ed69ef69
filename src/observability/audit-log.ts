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
 * new events are counted as dropped and the count is logged, never silently lost.
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
        // Keep what fits and try again at the next flush.
        const room = this.#options.capacity - this.#buffer.length;
        this.#buffer.unshift(...batch.slice(0, Math.max(0, room)));
        this.#dropped += Math.max(0, batch.length - room);
        this.#options.logger.warn({ err: (error as Error).message, buffered: this.#buffer.length }, 'audit write failed; will retry');
        return;
      }
    }
  }

  #reportDrops(): void {
    if (this.#dropped > this.#droppedReported) {
      this.#options.logger.warn({ dropped: this.#dropped - this.#droppedReported, total: this.#dropped }, 'audit buffer full: events dropped');
      this.#droppedReported = this.#dropped;
    }
  }
}

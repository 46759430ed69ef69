import type { Logger } from 'pino';
import type { AuditEvent, AuditRepository } from '../store/audit-repository.js';
import { redactUrlCredentials, storedArguments } from './audit-arguments.js';

export interface AuditLogOptions {
  /** Where events are stored; without one they go to the log only. */
  repository?: AuditRepository | undefined;
  logger: Logger;
  /** Argument keys matching any of these (case-insensitive) are stored as "[redacted]". */
  redactKeys: readonly string[];
  capacity: number;
  /** Stored arguments of one event are cut to this many bytes of JSON (see `audit-arguments.ts` for the marker). */
  maxArgumentBytes?: number | undefined;
  /** Refused calls written per minute at most; the rest are counted in `drops.refusedOverLimit`. */
  maxRefusedPerMinute?: number | undefined;
  flushIntervalMs?: number;
  batchSize?: number;
}

export interface RecordOptions {
  /** The call was refused (denied, rate limited) and never ran; defaults to `status === 'denied'`. */
  refused?: boolean | undefined;
}

const DEFAULT_MAX_ARGUMENT_BYTES = 16_384;
/** Longest stored target and error text, in characters. */
const MAX_TEXT_CHARS = 2000;

/**
 * Buffered audit writer. `record` never blocks or fails the call it describes: events wait in
 * memory and are written in batches. When the buffer is full (the database is slow or down),
 * new events are counted as dropped and the count is logged, never silently lost; so is an
 * event the database refuses for its content, which would otherwise block every batch after it.
 *
 * Stored arguments are redacted, bounded in depth and cut to `maxArgumentBytes`
 * (`audit-arguments.ts`). Refused calls cost the caller nothing, so a flood of them could grow
 * the table without bound: past `maxRefusedPerMinute` in any sliding minute they are counted,
 * not written. Calls that ran are never skipped for this.
 */
export class AuditLog {
  readonly #options: AuditLogOptions;
  readonly #redact: RegExp;
  readonly #refusedWindow: SlidingWindowBudget;
  #buffer: AuditEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #bufferFull = 0;
  #databaseRefused = 0;
  #refusedOverLimit = 0;
  #dropped = 0;
  #droppedReported = 0;
  #refusedReported = 0;
  #written = 0;

  constructor(options: AuditLogOptions) {
    this.#options = options;
    this.#redact = new RegExp(options.redactKeys.map((k) => `(?:${k})`).join('|') || '(?!)', 'i');
    this.#refusedWindow = new SlidingWindowBudget(options.maxRefusedPerMinute ?? Number.POSITIVE_INFINITY, 60_000);
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  get stats(): { buffered: number; dropped: number; written: number } {
    return { buffered: this.#buffer.length, dropped: this.#dropped, written: this.#written };
  }

  /**
   * Events not written, by reason: the buffer was full, the database refused the row, or a
   * refused call came over `maxRefusedPerMinute` (only the first two are lost records).
   */
  get drops(): { bufferFull: number; databaseRefused: number; refusedOverLimit: number } {
    return { bufferFull: this.#bufferFull, databaseRefused: this.#databaseRefused, refusedOverLimit: this.#refusedOverLimit };
  }

  /** Queues one event. Never throws: a call's audit row must not turn its answer into a failure. */
  record(event: Omit<AuditEvent, 'at'> & { at?: Date }, options: RecordOptions = {}): void {
    try {
      if ((options.refused ?? event.status === 'denied') && !this.#refusedWindow.take(Date.now())) {
        this.#refusedOverLimit++;
        return;
      }
      const complete: AuditEvent = {
        ...event,
        at: event.at ?? new Date(),
        // Both can come from the caller (a tool name, an upstream's message): bounded like the arguments.
        target: bounded(event.target, MAX_TEXT_CHARS),
        // A failed admin change may quote the URL it was given.
        error: event.error === undefined ? undefined : bounded(event.kind === 'admin' ? redactUrlCredentials(event.error) : event.error, MAX_TEXT_CHARS),
        arguments: this.#stored(event.kind, event.arguments),
      };
      if (!this.#options.repository) {
        this.#options.logger.info({ audit: complete }, 'audit');
        return;
      }
      if (this.#buffer.length >= this.#options.capacity) {
        this.#bufferFull++;
        this.#dropped++;
        return;
      }
      this.#buffer.push(complete);
      if (this.#buffer.length >= (this.#options.batchSize ?? 200)) void this.flush();
    } catch (error) {
      this.#options.logger.error({ err: (error as Error).message, kind: event.kind, target: event.target }, 'audit event could not be recorded');
    }
  }

  /** Arguments as stored: secrets replaced at any depth, depth and size bounded. */
  #stored(kind: AuditEvent['kind'], value: unknown): unknown {
    return storedArguments(value, {
      redactKey: this.#redact,
      maxBytes: this.#options.maxArgumentBytes ?? DEFAULT_MAX_ARGUMENT_BYTES,
      admin: kind === 'admin',
    });
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
        this.#bufferFull += Math.max(0, unwritten.length - room);
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
        this.#databaseRefused++;
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
    if (this.#refusedOverLimit > this.#refusedReported) {
      this.#options.logger.warn(
        { skipped: this.#refusedOverLimit - this.#refusedReported, total: this.#refusedOverLimit, maxRefusedPerMinute: this.#options.maxRefusedPerMinute },
        'refused calls over the audit limit: counted, not written',
      );
      this.#refusedReported = this.#refusedOverLimit;
    }
  }
}

/**
 * At most `limit` takes in any `windowMs`, as a ring of the last `limit` take times: a fixed
 * per-minute counter would let twice the limit through across a minute boundary.
 */
export class SlidingWindowBudget {
  readonly #times: number[] = [];
  #next = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Takes one unit at `now` (ms) when the window has room; false otherwise. */
  take(now: number): boolean {
    if (this.limit === Number.POSITIVE_INFINITY) return true;
    if (this.limit <= 0) return false;
    if (this.#times.length < this.limit) {
      this.#times.push(now);
      return true;
    }
    // The oldest of the last `limit` takes: room only once it has left the window.
    if (now - this.#times[this.#next]! < this.windowMs) return false;
    this.#times[this.#next] = now;
    this.#next = (this.#next + 1) % this.limit;
    return true;
  }
}

function bounded(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [cut: ${text.length - max} more characters]`;
}

/** A refusal of the data itself (SQLSTATE classes 22 and 23), not of the connection or the server. */
function isDataError(error: unknown): boolean {
  for (let e = error; e instanceof Object; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^2[23]/.test(code)) return true;
  }
  return false;
}

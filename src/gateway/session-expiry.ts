import type { Logger } from 'pino';
import type { DownstreamSession } from './downstream-session.js';
import { TOUCH_INTERVAL_MS, type SessionRecords } from './session-records.js';

export interface SessionExpiryHost {
  /** The copies held on this replica. */
  sessions(): Iterable<DownstreamSession>;
  /** Closes this replica's copy only, releasing its GET stream. */
  drop(session: DownstreamSession): Promise<void>;
  /** Ends the session everywhere. */
  close(id: string): Promise<void>;
  /** The session ended here by expiring: no replica used it for the idle time. */
  expired(id: string): void;
}

/**
 * How long sessions live: a copy is used by its requests (and by its tool calls in flight, however
 * long they run), which extend its record's life in the shared state at most once per
 * `TOUCH_INTERVAL_MS`, in the background, so that no request waits for a round trip. Its record
 * then always outlives the last request by the idle time (`SessionRecords` gives each touch the
 * idle time plus that interval).
 *
 * Copies without use for the idle time plus one touch interval are dropped. By then the record
 * has expired unless another replica used the session, and only then does the session end (its
 * events go, the other replicas drop their copies). An open GET stream does not count as use:
 * otherwise one stream held open keeps a session (and its quota slot) forever. Dropping ends the
 * stream; a client re-initializes on the 404 that follows.
 */
export class SessionExpiry {
  readonly #records: SessionRecords;
  readonly #host: SessionExpiryHost;
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout | undefined;

  constructor(records: SessionRecords, host: SessionExpiryHost, logger: Logger, idleMs: number) {
    this.#records = records;
    this.#host = host;
    this.#logger = logger;
    this.#idleMs = idleMs;
    if (idleMs > 0) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.min(idleMs / 2, 60_000));
      this.#sweeper.unref();
    }
  }

  /** The session was used now. */
  used(session: DownstreamSession): void {
    const now = Date.now();
    session.lastSeen = now;
    this.#refresh(session, now);
  }

  stop(): void {
    clearInterval(this.#sweeper);
  }

  /** A record gone when its life is extended means the session ended elsewhere (its news not here yet) or expired. */
  #refresh(session: DownstreamSession, now: number): void {
    if (now - session.touchedAt < TOUCH_INTERVAL_MS) return;
    session.touchedAt = now;
    this.#records.refresh(session.id, () => {
      if (session.lifetime.signal.aborted) return;
      this.#logger.info({ session: session.id }, 'session ended elsewhere or expired; closing its copy');
      void this.#host.close(session.id);
    });
  }

  #sweep(): void {
    const now = Date.now();
    const cutoff = now - this.#idleMs - TOUCH_INTERVAL_MS;
    for (const session of this.#host.sessions()) {
      if (session.activeCalls > 0) {
        session.busyAt = now;
        this.#refresh(session, now);
      } else if (Math.max(session.lastSeen, session.busyAt) < cutoff) {
        this.#logger.info({ session: session.id }, 'closing idle session');
        void this.#expire(session);
      }
    }
  }

  async #expire(session: DownstreamSession): Promise<void> {
    await this.#host.drop(session);
    if (await this.#records.isGone(session.id)) {
      this.#host.expired(session.id);
      await this.#records.forget(session.id);
    }
  }
}

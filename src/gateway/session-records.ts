import type { EventStore, LoggingLevel } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { SessionRecord, SessionWire, SharedState } from '../state/shared-state.js';

/**
 * A session's record has its life extended at most this often from one replica: a request
 * costs no round trip to the shared state, at the price of a record that may outlive the last
 * request by this much more than the idle time (see `ttlMs`).
 */
export const TOUCH_INTERVAL_MS = 1000;

/** With `sessionIdleSeconds: 0` sessions never expire; the record still needs a lifetime. */
const UNBOUNDED_IDLE_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** A change a client made to its session that other replicas' copies must follow. */
export type SettingsChange = { logLevel: LoggingLevel } | { subscribed: string } | { unsubscribed: string };

/**
 * The shared side of sessions: their records (who owns each, what it negotiated, its log level
 * and subscriptions, which replica holds its stream), their quotas, and their events. A record
 * lives as long as some replica keeps it in use; a replica's copy of a session is only a cache
 * of it. Calls that may fail because the shared state does not answer say so below; the others
 * are best effort and log.
 */
export class SessionRecords {
  readonly #state: SharedState;
  readonly #logger: Logger;
  /** What a claim gives a new session: the idle time. */
  readonly claimTtlMs: number;
  /** What each later use gives: the idle time from the last request, however late its touch came. */
  readonly #touchTtlMs: number;

  constructor(state: SharedState, logger: Logger, idleMs: number) {
    this.#state = state;
    this.#logger = logger;
    this.claimTtlMs = idleMs > 0 ? idleMs : UNBOUNDED_IDLE_TTL_MS;
    this.#touchTtlMs = this.claimTtlMs + TOUCH_INTERVAL_MS;
  }

  get replicaId(): string {
    return this.#state.replicaId;
  }

  /**
   * Registers a new session against the quotas of every replica; the limit that refused it
   * otherwise. Throws `SharedStateUnavailableError`.
   */
  async claim(
    fields: Pick<SessionRecord, 'id' | 'principal' | 'rateKey' | 'wire' | 'initialize' | 'streamHolder'>,
    limits: { maxPerKey: number; maxTotal: number },
  ): Promise<'ok' | 'per-key' | 'total'> {
    return this.#state.sessions.claim({ ...fields, subscriptions: [], createdAt: Date.now() }, this.claimTtlMs, limits);
  }

  /** The record of `id`, when it is still alive. Throws `SharedStateUnavailableError`. */
  get(id: string): Promise<SessionRecord | undefined> {
    return this.#state.sessions.get(id);
  }

  /** The record of `id` when `principal` opened it on `wire`; undefined to anyone else. Throws `SharedStateUnavailableError`. */
  async ownedBy(id: string, principal: string, wire: SessionWire): Promise<SessionRecord | undefined> {
    const record = await this.get(id);
    return record && record.principal === principal && record.wire === wire ? record : undefined;
  }

  /**
   * Extends the record's life, in the background. `gone` is called when the record no longer
   * exists: the session ended elsewhere (a DELETE whose news has not arrived yet) or expired.
   */
  refresh(id: string, gone: () => void): void {
    void bestEffort(
      async () => {
        if (!(await this.#state.sessions.touch(id, this.#touchTtlMs))) gone();
      },
      this.#logger,
      'extend the life of a session record',
    );
  }

  /** Removes the record (the session ends for every replica). Throws `SharedStateUnavailableError`. */
  remove(id: string): Promise<boolean> {
    return this.#state.sessions.remove(id);
  }

  /** The session ended for good: its record and events go, and every replica drops its copy. */
  async end(id: string): Promise<void> {
    await bestEffort(() => this.#state.sessions.remove(id), this.#logger, 'remove a session record', 'warn');
    await this.forget(id);
  }

  /** The record is gone already (it expired): the events go, and every replica drops its copy. */
  async forget(id: string): Promise<void> {
    await Promise.all([
      bestEffort(() => this.#state.bus.broadcast({ kind: 'session-closed', session: id }), this.#logger, 'tell the other replicas a session ended'),
      bestEffort(() => this.#state.eventsFor(id).drop(), this.#logger, 'drop the events of an ended session'),
    ]);
  }

  /** A session that was claimed but never initialized: nobody else can know it. */
  async discard(id: string): Promise<void> {
    await bestEffort(() => this.#state.sessions.remove(id), this.#logger, 'remove the record of a session that never initialized', 'warn');
    await bestEffort(() => this.#state.eventsFor(id).drop(), this.#logger, 'drop the events of a session that never initialized');
  }

  /** Whether the record is gone; false when the shared state does not answer (so nothing is ended on a guess). */
  async isGone(id: string): Promise<boolean> {
    try {
      return (await this.get(id)) === undefined;
    } catch (error) {
      this.#logger.debug({ err: error, session: id }, 'could not tell whether an idle session ended elsewhere');
      return false;
    }
  }

  /**
   * Records a change the client made to its session, and tells the other replicas when the
   * record changed. A subscription is added or taken in one atomic step of the store: requests
   * of one client are concurrent (one may land on each replica), and a read-then-write would let
   * one of two subscriptions made at once overwrite the other.
   */
  async change(id: string, change: SettingsChange): Promise<void> {
    await bestEffort(
      async () => {
        const { sessions } = this.#state;
        const changed =
          'logLevel' in change
            ? await sessions.update(id, { logLevel: change.logLevel })
            : 'subscribed' in change
              ? await sessions.addSubscription(id, change.subscribed)
              : await sessions.removeSubscription(id, change.unsubscribed);
        if (changed) await this.#state.bus.broadcast({ kind: 'session-changed', session: id });
      },
      this.#logger,
      'record a change to a session for the other replicas',
      'warn',
    );
  }

  /**
   * This replica now holds the session's GET stream: messages about no request come here. The
   * other copies hear of it (`session-changed`) and send such messages here from then on.
   */
  holdStream(id: string): Promise<void> {
    return bestEffort(
      async () => {
        await this.#state.sessions.update(id, { streamHolder: this.replicaId });
        await this.#state.bus.broadcast({ kind: 'session-changed', session: id });
      },
      this.#logger,
      'record the holder of a GET stream',
      'warn',
    );
  }

  /** The stream held here ended: the record stops naming this replica, unless another took the stream since. */
  async releaseStream(id: string): Promise<void> {
    await this.clearHolder(id, this.replicaId);
  }

  /**
   * The record stops naming `holder` as its stream holder (its stream ended, or it no longer
   * listens: it stopped without a word), unless another took the stream since; the other
   * copies are told. True when the record changed.
   */
  async clearHolder(id: string, holder: string): Promise<boolean> {
    let cleared = false;
    await bestEffort(
      async () => {
        cleared = await this.#state.sessions.update(id, { streamHolder: undefined }, { ifStreamHolder: holder });
        if (cleared) await this.#state.bus.broadcast({ kind: 'session-changed', session: id });
      },
      this.#logger,
      'clear the holder of a GET stream that ended',
    );
    return cleared;
  }

  /** The event store of a session's streams, shared by its copies on every replica. */
  events(id: string): EventStore {
    return this.#state.eventsFor(id);
  }
}

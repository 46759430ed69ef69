import { randomUUID } from 'node:crypto';
import type { AuthInfo, EventStore, JSONRPCMessage, Server, ServerCapabilities, Transport } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { Access } from '../auth/access-policy.js';
import { bestEffort } from '../observability/best-effort.js';
import { MemorySharedState } from '../state/memory-state.js';
import type { SessionRecord, SessionWire, SharedState } from '../state/shared-state.js';
import { CallerSlots, CurrentRights, endCallsInFlight, newSession, type AccessRules, type DownstreamSession, type SessionOwner } from './downstream-session.js';
import { ReplicaRouting, type ListChanges } from './replica-routing.js';
import { ReplicatedTransport } from './replicated-transport.js';
import { connectCopy, EventStoreFailures, isReplay, replayAwareEvents, SessionRebuilder, type SessionCopy } from './session-rebuild.js';
import { SessionExpiry } from './session-expiry.js';
import { SessionRecords, type SettingsChange } from './session-records.js';
import { SseSessionTransport } from './sse-session-transport.js';

// Where other modules have always found them.
export type { DownstreamSession, SessionOwner } from './downstream-session.js';
export { inCallSlot } from './downstream-session.js';

export interface SessionRegistryOptions {
  /** The session's MCP server, for the caller opening it. */
  createServer: (owner: SessionOwner) => { server: Server; capabilities: ServerCapabilities };
  logger: Logger;
  /** Called once for every copy that ends here (the session ending, or only this replica's copy), after it is removed. */
  onClosed?: (session: DownstreamSession) => void;
  /** Called for every copy registered here (`origin` tells a session opened here from a copy of one opened elsewhere). */
  onOpened?: (session: DownstreamSession) => void;
  /** Called once per session this replica ends (DELETE, its credential or stream, its record found expired), held here or not. */
  onEnded?: (id: string) => void;
  /** Sessions without a request (and no tool call in flight) for this long are closed; 0 keeps them. */
  idleMs: number;
  /**
   * The access rules in force, to re-evaluate a session's rights when something is delivered
   * to it long after its last request (grants change at run time). Without them the rights
   * of the latest request stand.
   */
  rules?: AccessRules | undefined;
  /** What replicas share: session records, messages between them, events. Default: this process's own memory. */
  state?: SharedState | undefined;
  /** Cancels a call served outside the session's transport (the plain tool-call path); true when it named one. */
  cancelOutside?: ((session: DownstreamSession, message: unknown) => boolean) | undefined;
}

/** A session claimed and ready to answer its `initialize`. */
export interface PreparedSession extends SessionCopy {
  id: string;
}

/**
 * The sessions this replica holds a copy of, by `Mcp-Session-Id`, over the records every
 * replica shares. Session ids are random UUIDs (122 bits). A session opened on another replica
 * is rebuilt here from its record when one of its requests lands here (`find`); a copy unused
 * for the idle time is dropped, and the session ends when no replica used it (its record
 * expired), when its client deletes it, or when its credential or HTTP+SSE stream ends.
 */
export class SessionRegistry {
  readonly #sessions = new Map<string, DownstreamSession>();
  readonly #callerSlots = new CallerSlots();
  readonly #rights: CurrentRights;
  readonly #options: SessionRegistryOptions;
  readonly #records: SessionRecords;
  readonly #expiry: SessionExpiry;
  readonly #routing: ReplicaRouting;
  readonly #rebuilder: SessionRebuilder;
  readonly #eventFailures: EventStoreFailures;
  readonly #unlisten: () => void;

  constructor(options: SessionRegistryOptions) {
    this.#options = options;
    this.#rights = new CurrentRights(options.rules);
    const { logger } = options;
    const state = options.state ?? new MemorySharedState();
    this.#records = new SessionRecords(state, logger, options.idleMs);
    this.#eventFailures = new EventStoreFailures(logger);
    const host = { get: (id: string) => this.#sessions.get(id), drop: (id: string) => this.#drop(id), used: (session: DownstreamSession) => this.used(session) };
    const refresh = (session: DownstreamSession<ReplicatedTransport>) => this.#rebuilder.refresh(session, this.#authInfoOf(session));
    this.#routing = new ReplicaRouting(state, this.#records, { ...host, refresh, authInfoOf: (session) => this.#authInfoOf(session), cancelOutside: options.cancelOutside }, logger);
    this.#rebuilder = new SessionRebuilder({
      records: this.#records,
      failures: this.#eventFailures,
      copy: (id, owner, events) => this.#copy(id, owner, events),
      register: (id, owner, copy, streamHolder) => this.#register(id, owner, copy, 'rebuilt', streamHolder),
      logger,
    });
    this.#expiry = new SessionExpiry(
      this.#records,
      {
        sessions: () => this.#sessions.values(),
        drop: (session) => this.#closeLocal(session, true),
        close: (id) => this.close(id),
        expired: (id) => this.#options.onEnded?.(id),
      },
      logger,
      options.idleMs,
    );
    this.#unlisten = this.#routing.listen();
  }

  /** Copies held here: sessions opened here and copies of sessions opened elsewhere. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Claims a new session on `wire` against the session limits of every replica, before its
   * client hears of it: its id, or the limit that refused it. The record keeps the client's
   * own `initialize` params, for other replicas to rebuild the session from. Throws
   * `SharedStateUnavailableError`.
   */
  async claim(
    owner: SessionOwner,
    wire: SessionWire,
    initialize: SessionRecord['initialize'],
    limits: { maxSessions: number; maxSessionsPerPrincipal: number },
    id: string = randomUUID(),
  ): Promise<{ id: string } | { refused: 'per-key' | 'total' }> {
    // An HTTP+SSE session is its stream, held by the replica that opens it.
    const streamHolder = wire === 'sse' ? this.#records.replicaId : undefined;
    const outcome = await this.#records.claim(
      { id, principal: owner.principal, rateKey: owner.rateKey, wire, initialize, streamHolder },
      { maxPerKey: limits.maxSessionsPerPrincipal, maxTotal: limits.maxSessions },
    );
    return outcome === 'ok' ? { id } : { refused: outcome };
  }

  /**
   * A server and transport ready to answer the `initialize` of the claimed session `id`. It is
   * registered once the transport accepts the initialize; `discardIfUninitialized` frees it
   * (and its claim) otherwise.
   */
  async prepare(owner: SessionOwner, id: string): Promise<PreparedSession> {
    try {
      const copy: SessionCopy = await this.#copy(id, owner, replayAwareEvents(this.#records.events(id), this.#eventFailures), () => void this.#register(id, owner, copy, 'opened'));
      return { id, ...copy };
    } catch (error) {
      await this.#records.discard(id);
      throw error;
    }
  }

  async discardIfUninitialized(prepared: PreparedSession): Promise<void> {
    if (this.#sessions.get(prepared.id)?.transport === prepared.transport) return;
    await bestEffort(() => prepared.server.close(), this.#options.logger, 'close a session that never initialized');
    await this.#records.discard(prepared.id);
  }

  /**
   * Registers a claimed session whose transport has its id before any message (the HTTP+SSE
   * wire hands it to the client first), then connects its server. Its stream is held here.
   */
  async open<T extends Transport & { readonly sessionId: string }>(owner: SessionOwner, transport: T): Promise<DownstreamSession<T>> {
    try {
      const { server, capabilities } = this.#options.createServer(owner);
      const session = this.#register(transport.sessionId, owner, { server, capabilities, transport }, 'opened', this.#records.replicaId);
      session.standaloneStreams = 1;
      await server.connect(transport);
      return session;
    } catch (error) {
      await this.close(transport.sessionId);
      throw error;
    }
  }

  /**
   * The session `id` when `owner` opened it on Streamable HTTP and this replica holds no copy:
   * rebuilt here from its record, then touched as `touch` does. Undefined when it does not
   * exist for them. Throws `SharedStateUnavailableError`.
   */
  async find(id: string, owner: SessionOwner, authInfo: AuthInfo): Promise<DownstreamSession<ReplicatedTransport> | undefined> {
    // Held here for another principal or on another wire: its record says the same.
    if (this.#sessions.has(id)) return undefined;
    await this.#rebuilder.rebuild(id, owner, authInfo);
    return this.touch(id, owner.principal, owner.access);
  }

  /**
   * Ends the session `id`, of which this replica holds no copy, when `principal` opened it on
   * Streamable HTTP; false when it does not exist for them. Throws `SharedStateUnavailableError`.
   */
  async end(id: string, principal: string): Promise<boolean> {
    if (this.#sessions.has(id) || !(await this.#records.ownedBy(id, principal, 'streamable-http'))) return false;
    await this.#records.remove(id);
    await this.close(id);
    return true;
  }

  /**
   * The first step of a client's DELETE of a session held here: its record goes, before the
   * transport answers (and every copy closes). Throws `SharedStateUnavailableError` when the
   * record could not be removed: the DELETE then fails and the session lives on, so the client
   * retries rather than leave a record other replicas would still serve.
   */
  async removeRecord(session: DownstreamSession): Promise<void> {
    await this.#records.remove(session.id);
  }

  /**
   * Hands a message posted for the HTTP+SSE session `id` to the replica holding its stream,
   * when `principal` opened it and that replica is another one; false when it does not exist
   * for them. Throws `SharedStateUnavailableError`.
   */
  async forwardToStream(id: string, principal: string, message: JSONRPCMessage): Promise<boolean> {
    if (this.#sessions.has(id)) return false;
    const holder = (await this.#records.ownedBy(id, principal, 'sse'))?.streamHolder;
    if (holder === undefined || holder === this.#records.replicaId) return false;
    await this.#routing.forward(holder, id, message);
    return true;
  }

  /**
   * Copies held here of sessions opened under one rate key (a principal, or a client address
   * without authentication). Not a quota: those are the shared state's, across replicas (`claim`).
   */
  countFor(rateKey: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.rateKey === rateKey) count++;
    return count;
  }

  /** Runs `work` as one of the tool calls a caller makes without a session (see `CallerSlots`). */
  inCallerSlot<T>(rateKey: string, max: number, work: () => Promise<T>): Promise<T> {
    return this.#callerSlots.run(rateKey, max, work);
  }

  get(id: string | undefined): DownstreamSession | undefined {
    return id === undefined ? undefined : this.#sessions.get(id);
  }

  /**
   * This replica's copy of the session when `principal` opened it on the wire `transport` names
   * (Streamable HTTP unless told), marked as used now and carrying the rights of this request;
   * to anyone else it does not exist (and is not kept alive by them).
   */
  touch(id: string, principal: string, access: Access): DownstreamSession<ReplicatedTransport> | undefined;
  touch<T extends Transport>(id: string, principal: string, access: Access, transport: abstract new (...args: never[]) => T): DownstreamSession<T> | undefined;
  touch(id: string, principal: string, access: Access, transport: abstract new (...args: never[]) => Transport = ReplicatedTransport): DownstreamSession | undefined {
    const session = this.#sessions.get(id);
    if (!session || session.principal !== principal || !(session.transport instanceof transport)) return undefined;
    session.access = access;
    this.used(session);
    return session;
  }

  /** Marks the session used now (see `SessionExpiry`): no request waits for the shared state. */
  used(session: DownstreamSession): void {
    this.#expiry.used(session);
  }

  /** A GET stream that messages about no request go out on opened here: this replica becomes the session's stream holder. */
  async streamOpened(session: DownstreamSession): Promise<void> {
    session.standaloneStreams++;
    session.streamHolder = this.#records.replicaId;
    await this.#records.holdStream(session.id);
  }

  /** Such a stream ended here. */
  streamEnded(session: DownstreamSession): void {
    session.standaloneStreams--;
    if (session.standaloneStreams === 0 && this.#sessions.get(session.id) === session) {
      if (session.streamHolder === this.#records.replicaId) session.streamHolder = undefined;
      void this.#records.releaseStream(session.id);
    }
  }

  /**
   * Records a change the client made to its session (log level, subscriptions), which copies on
   * other replicas then follow. A replica replaying the record to its copy (`authInfo` of the
   * replay) records nothing: the record is where the setting came from.
   */
  recordSettings(session: DownstreamSession, change: SettingsChange, authInfo: AuthInfo | undefined): Promise<void> {
    // An HTTP+SSE session has no copies elsewhere: everything it does is done where its stream is.
    if (session.transport instanceof SseSessionTransport || isReplay(authInfo)) return Promise.resolve();
    return this.#records.change(session.id, change);
  }

  /** The session's rights now (see `CurrentRights`). */
  accessOf(session: DownstreamSession): Access {
    return this.#rights.of(session.access);
  }

  all(): IterableIterator<DownstreamSession> {
    return this.#sessions.values();
  }

  /** Tells every session which lists changed (once, see `ReplicaRouting.notifyListsChanged`). */
  notifyListsChanged(changes: ListChanges): void {
    this.#routing.notifyListsChanged(this.#sessions.values(), changes);
  }

  /** Ends the session everywhere: its record and events, and every replica's copy. */
  async close(id: string): Promise<void> {
    this.#rebuilder.ended(id);
    const session = this.#sessions.get(id);
    const ending = this.#records.end(id);
    this.#options.onEnded?.(id);
    if (session) await this.#closeLocal(session, false);
    await ending;
  }

  /**
   * Closes the copies held here (shutdown). Their sessions live on in the shared state, served
   * by the other replicas; an HTTP+SSE session is its stream, which ends here, and ends with it.
   */
  async closeAll(): Promise<void> {
    this.#expiry.stop();
    this.#unlisten();
    await Promise.all(
      [...this.#sessions.values()].map((session) => (session.transport instanceof SseSessionTransport ? this.close(session.id) : this.#closeLocal(session, true))),
    );
  }

  /** The session ended on another replica: the copy here goes. */
  async #drop(id: string): Promise<void> {
    this.#rebuilder.ended(id);
    const session = this.#sessions.get(id);
    if (session) await this.#closeLocal(session, false);
  }

  /** Closes the copy held here; `release`: the record stops naming this replica as its stream holder. */
  async #closeLocal(session: DownstreamSession, release: boolean): Promise<void> {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    this.#options.logger.debug({ session: session.id }, 'session closed');
    if (release && session.standaloneStreams > 0 && session.transport instanceof ReplicatedTransport) await this.#records.releaseStream(session.id);
    await endCallsInFlight(session, this.#options.logger);
    await bestEffort(() => session.server.close(), this.#options.logger, 'close the session server');
    this.#options.onClosed?.(session);
  }

  #copy(id: string, owner: SessionOwner, events: EventStore, onInitialized?: () => void): Promise<SessionCopy> {
    const server = this.#options.createServer(owner);
    return connectCopy({ id, replicaId: this.#records.replicaId, server, events, onInitialized, onClosed: (closed) => this.close(closed) });
  }

  #register<T extends Transport>(
    id: string,
    owner: SessionOwner,
    copy: { server: Server; capabilities: ServerCapabilities; transport: T },
    origin: 'opened' | 'rebuilt',
    streamHolder?: string,
  ): DownstreamSession<T> {
    const session = newSession(id, owner, copy, origin, streamHolder);
    this.#sessions.set(id, session);
    if (copy.transport instanceof ReplicatedTransport) copy.transport.links = this.#routing.linksFor(session);
    this.#options.onOpened?.(session);
    this.#options.logger.debug({ session: id, origin }, 'session opened');
    return session;
  }

  #authInfoOf(session: DownstreamSession): AuthInfo {
    const access = this.accessOf(session);
    return { token: '', clientId: session.principal, scopes: [...access.principal.scopes], extra: { access, rateKey: session.rateKey } };
  }
}

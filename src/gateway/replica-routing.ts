import type { AuthInfo, JSONRPCMessage } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { ReplicaMessage, SharedState } from '../state/shared-state.js';
import { ReplicatedTransport, STANDALONE_STREAM, untag, type ReplicaLinks } from './replicated-transport.js';
import type { DownstreamSession } from './downstream-session.js';
import type { SessionRecords } from './session-records.js';
import { receiveInSession, SseSessionTransport } from './sse-session-transport.js';

export interface ListChanges {
  tools: boolean;
  prompts: boolean;
  resources: boolean;
}

/** What the routing needs of the registry of this replica's sessions. */
export interface RoutingHost {
  get(id: string): DownstreamSession | undefined;
  /** Closes this replica's copy only: the session ended on another replica. */
  drop(id: string): Promise<void>;
  /** Brings a copy to its record's settings (another replica changed them). */
  refresh(session: DownstreamSession<ReplicatedTransport>): Promise<void>;
  /** The rights a message from the client is handled with when it came through another replica. */
  authInfoOf(session: DownstreamSession): AuthInfo;
  /** The session was used now (a message its client posted to another replica). */
  used(session: DownstreamSession): void;
  /** Cancels a call served outside the session's transport (the plain tool-call path); true when it named one. */
  cancelOutside?: ((session: DownstreamSession, message: unknown) => boolean) | undefined;
}

/**
 * Messages of one session that must cross replicas, because the client's requests land on any
 * of them while some things exist on one only: the request a copy's server sent the client (its
 * answer goes back to that copy), a request in flight (its cancellation), the GET stream (what
 * is about no request goes out there) and an HTTP+SSE stream (every message of the session is
 * handled where its stream is).
 */
export class ReplicaRouting {
  readonly #state: SharedState;
  readonly #records: SessionRecords;
  readonly #host: RoutingHost;
  readonly #logger: Logger;

  constructor(state: SharedState, records: SessionRecords, host: RoutingHost, logger: Logger) {
    this.#state = state;
    this.#records = records;
    this.#host = host;
    this.#logger = logger;
  }

  /** Starts taking messages from the other replicas; returns the stop. */
  listen(): () => void {
    return this.#state.bus.onMessage((message) => this.#receive(message));
  }

  /** What the transport of a session's copy here asks of the other replicas. */
  linksFor(session: DownstreamSession): ReplicaLinks {
    const id = session.id;
    return {
      answerElsewhere: (replica, message) =>
        void bestEffort(() => this.#state.bus.send(replica, { kind: 'from-client', session: id, message }), this.#logger, 'hand a client answer to the replica that asked'),
      cancelled: (requestId, message) => {
        // The request runs elsewhere, or nowhere any more: whoever runs it stops it.
        if (!session.requestsInFlight.has(requestId)) {
          void bestEffort(() => this.#state.bus.broadcast({ kind: 'from-client', session: id, message }), this.#logger, 'tell the other replicas of a cancellation');
        }
      },
      standalone: (message) => this.#toStreamHolder(session, message),
    };
  }

  /**
   * Tells sessions which lists changed. Every replica's catalog changes on its own, so each
   * session hears it from one copy only: the one holding its GET stream, or with none open
   * anywhere, the one on the replica that opened it (the change then waits in the event
   * store). Judged on each copy's `streamHolder`, without a read of the shared state: a
   * change reaches every session at once, and as many reads in one tick would crowd out the
   * requests. A session that cannot be reached is left to expire.
   */
  notifyListsChanged(sessions: Iterable<DownstreamSession>, changes: ListChanges): void {
    for (const session of sessions) {
      if (session.standaloneStreams > 0 || (session.origin === 'opened' && this.#holderElsewhere(session) === undefined)) this.#sendListChanges(session, changes);
    }
  }

  #sendListChanges(session: DownstreamSession, changes: ListChanges): void {
    const { id, server, capabilities } = session;
    const log = this.#logger.isLevelEnabled('debug') ? this.#logger.child({ session: id }) : this.#logger;
    if (changes.tools) void bestEffort(() => server.sendToolListChanged(), log, 'send notifications/tools/list_changed');
    if (changes.prompts && capabilities.prompts) void bestEffort(() => server.sendPromptListChanged(), log, 'send notifications/prompts/list_changed');
    if (changes.resources && capabilities.resources) void bestEffort(() => server.sendResourceListChanged(), log, 'send notifications/resources/list_changed');
  }

  /** Hands a message the client posted for an HTTP+SSE session to the replica holding its stream. */
  async forward(replica: string, session: string, message: JSONRPCMessage): Promise<void> {
    await this.#state.bus.send(replica, { kind: 'from-client', session, message });
  }

  async #toStreamHolder(session: DownstreamSession, message: JSONRPCMessage): Promise<boolean> {
    if (session.standaloneStreams > 0) return false;
    const holder = this.#holderElsewhere(session);
    if (holder === undefined) return false;
    try {
      if ((await this.#state.bus.send(holder, { kind: 'to-client', session: session.id, message })) !== false) return true;
    } catch (error) {
      this.#logger.debug({ err: error, session: session.id }, 'could not hand a message to the replica holding the GET stream; kept for a resume');
      return false;
    }
    // Nobody listens there: that replica stopped without releasing the stream (it crashed). The
    // record stops naming it, unless another took the stream since, and the message waits here.
    session.streamHolder = undefined;
    await this.#records.clearHolder(session.id, holder);
    return false;
  }

  /** The replica holding the session's stream, as its copy here last heard, when it is another one. */
  #holderElsewhere(session: DownstreamSession): string | undefined {
    const holder = session.streamHolder;
    return holder === this.#state.replicaId ? undefined : holder;
  }

  #receive(message: ReplicaMessage): void {
    switch (message.kind) {
      case 'session-closed':
        void this.#host.drop(message.session);
        return;
      case 'session-changed': {
        const session = this.#host.get(message.session);
        if (session?.transport instanceof ReplicatedTransport) void this.#host.refresh(session as DownstreamSession<ReplicatedTransport>);
        return;
      }
      case 'to-client':
        void this.#sendHere(message.session, message.message);
        return;
      case 'from-client':
        this.#fromClient(message.session, message.message);
        return;
      default:
        // Not about sessions (configuration changes): others listen for those.
        return;
    }
  }

  /** A message for the client, sent on the stream this replica holds. */
  async #sendHere(id: string, message: JSONRPCMessage): Promise<void> {
    const transport = this.#host.get(id)?.transport;
    if (transport instanceof ReplicatedTransport) return bestEffort(() => transport.sendHere(message), this.#logger, 'send a message routed here on the GET stream');
    if (transport instanceof SseSessionTransport) return bestEffort(() => transport.send(message), this.#logger, 'send a message routed here on an HTTP+SSE stream');
    // The copy left in the meantime: kept for a resume while the session lives.
    await bestEffort(
      async () => {
        if (await this.#state.sessions.get(id)) await this.#state.eventsFor(id).storeEvent(STANDALONE_STREAM, message);
      },
      this.#logger,
      'keep a message for a GET stream nobody holds',
    );
  }

  #fromClient(id: string, message: JSONRPCMessage): void {
    const session = this.#host.get(id);
    if (!session) return;
    const { transport } = session;
    if (transport instanceof SseSessionTransport) {
      this.#host.used(session);
      try {
        receiveInSession(session as DownstreamSession<SseSessionTransport>, message, { authInfo: this.#host.authInfoOf(session) });
      } catch (error) {
        this.#logger.debug({ err: error, session: id }, 'a message posted through another replica was refused');
      }
      return;
    }
    if (!(transport instanceof ReplicatedTransport)) return;
    if ((message as { method?: unknown }).method === 'notifications/cancelled') {
      if (!this.#host.cancelOutside?.(session, message)) transport.onmessage?.(message);
      return;
    }
    // An answer to a request this copy sent: given back the id its server knows.
    const { id: answered } = message as { id?: unknown };
    const tagged = typeof answered === 'string' ? untag(answered) : undefined;
    if (tagged?.replica === this.#state.replicaId) transport.onmessage?.({ ...message, id: tagged.id } as JSONRPCMessage);
  }
}

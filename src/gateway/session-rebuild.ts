import { randomUUID } from 'node:crypto';
import type { AuthInfo, EventStore, JSONRPCMessage, Server, ServerCapabilities } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import { SharedStateUnavailableError, type SessionRecord } from '../state/shared-state.js';
import { ReplicatedTransport } from './replicated-transport.js';
import type { SessionRecords } from './session-records.js';
import type { DownstreamSession, SessionOwner } from './downstream-session.js';

/** Ids of the requests a replica makes to its own copy of a session; their answers are nobody's events. */
const REPLAY_ID = 'conflux-replay-';
/** Set in the `authInfo.extra` of those requests: what they set is the record's already, and is not recorded again. */
const REPLAY_FLAG = 'confluxReplay';

/**
 * Whether a request is a replica replaying a session's record to its copy: its settings are
 * not recorded (the record may have moved on since it was read; writing the older value back
 * would undo the client's later change).
 */
export function isReplay(authInfo: AuthInfo | undefined): boolean {
  return authInfo?.extra?.[REPLAY_FLAG] === true;
}
/** Handlers read only the request's `authInfo`; the URL just has to be one. */
const INTERNAL_URL = 'http://replica.internal/mcp';

/** A server and transport for one session, connected, not registered yet. */
export interface SessionCopy {
  server: Server;
  capabilities: ServerCapabilities;
  transport: ReplicatedTransport;
}

/** Sent in the priming event of every stream: how long a client whose stream ended waits before it resumes with Last-Event-ID (the SDK client's own default, made explicit). */
const SSE_RETRY_MS = 1000;

/** A server for `owner` connected to a new transport for session `id`: the one being opened, or a copy of one opened elsewhere. */
export async function connectCopy(options: {
  id: string;
  replicaId: string;
  server: { server: Server; capabilities: ServerCapabilities };
  events: EventStore;
  /** Once the transport accepted an initialize. */
  onInitialized?: (() => void) | undefined;
  /** A DELETE: awaited by the transport, so calls in flight are answered before it ends their streams. */
  onClosed: (id: string) => Promise<void>;
}): Promise<SessionCopy> {
  const { id, server } = options;
  const transport = new ReplicatedTransport({
    replicaId: options.replicaId,
    sessionIdGenerator: () => id,
    onsessioninitialized: options.onInitialized,
    onsessionclosed: options.onClosed,
    eventStore: options.events,
    retryInterval: SSE_RETRY_MS,
  });
  await server.server.connect(transport);
  return { ...server, transport };
}

export interface RebuildDeps {
  records: SessionRecords;
  /** Where each copy's event store reports a failure to store. */
  failures: EventStoreFailures;
  /** A new copy of session `id` for `owner`, its events in `events`. */
  copy(id: string, owner: SessionOwner, events: EventStore): Promise<SessionCopy>;
  /** Makes a copy this replica's session `id`, whose GET stream `streamHolder` holds. */
  register(id: string, owner: SessionOwner, copy: SessionCopy, streamHolder: string | undefined): DownstreamSession<ReplicatedTransport>;
  logger: Logger;
}

/**
 * Copies of sessions another replica opened. A copy is built by replaying what its client did:
 * the recorded `initialize` (so the server negotiates exactly what it negotiated the first
 * time) and `notifications/initialized`, through the copy's own transport, then its log level
 * and subscriptions as `logging/setLevel` and `resources/subscribe` requests, so the handlers
 * that served the client do the same again here (the upstream log level, upstream
 * subscriptions through `ResourceSubscriptions`, access checks as of now). The answers are
 * read and dropped.
 */
export class SessionRebuilder {
  /** Rebuilds under way, by principal and id: concurrent requests for one session wait for one. */
  readonly #flights = new Map<string, { done: Promise<void>; ended: boolean }>();
  /** Per copy, the end of its queue of settings being applied. */
  readonly #settings = new WeakMap<DownstreamSession, Promise<void>>();
  readonly #deps: RebuildDeps;

  constructor(deps: RebuildDeps) {
    this.#deps = deps;
  }

  /**
   * Builds this replica's copy of session `id` when `owner` opened it on Streamable HTTP (once,
   * however many requests ask at the same time); nothing when it does not exist for them.
   * Throws `SharedStateUnavailableError`.
   */
  rebuild(id: string, owner: SessionOwner, authInfo: AuthInfo): Promise<void> {
    const key = `${owner.principal}\0${id}`;
    let flight = this.#flights.get(key);
    if (!flight) {
      const started = { done: Promise.resolve(), ended: false };
      started.done = this.#rebuild(id, owner, authInfo, () => started.ended).finally(() => this.#flights.delete(key));
      this.#flights.set(key, (flight = started));
    }
    return flight.done;
  }

  /** The session ended: a copy being built for it is not kept. */
  ended(id: string): void {
    for (const [key, flight] of this.#flights) if (key.endsWith(`\0${id}`)) flight.ended = true;
  }

  /**
   * Brings a copy's log level and subscriptions to what its record says now (another replica
   * changed them). The record is read when its turn in the queue comes, so a copy never applies
   * settings older than some it applied before; `fallback`, when the record cannot be read.
   */
  refresh(session: DownstreamSession<ReplicatedTransport>, authInfo: AuthInfo, fallback?: SessionRecord): Promise<void> {
    return this.#queued(session, async () => {
      let record: SessionRecord | undefined;
      try {
        record = await this.#deps.records.get(session.id);
      } catch (error) {
        if (!fallback) throw error;
        record = fallback;
      }
      if (record) await this.#apply(session, record, authInfo);
    });
  }

  async #rebuild(id: string, owner: SessionOwner, authInfo: AuthInfo, ended: () => boolean): Promise<void> {
    const record = await this.#deps.records.ownedBy(id, owner.principal, 'streamable-http');
    if (!record) return;
    const copyOwner = { principal: record.principal, rateKey: record.rateKey, access: owner.access };
    const events = replayAwareEvents(this.#deps.records.events(id), this.#deps.failures);
    let copy: SessionCopy | undefined;
    try {
      copy = await this.#deps.copy(id, copyOwner, events);
      // Nothing else can reach the copy yet: everything it writes now is replay.
      events.quiet = true;
      const answer = await replay(copy.transport, undefined, { method: 'initialize', params: record.initialize }, authInfo);
      if (!answer || 'error' in answer) throw new Error(`the recorded initialize was refused: ${JSON.stringify(answer?.error ?? 'no answer')}`);
      await replay(copy.transport, id, { method: 'notifications/initialized' }, authInfo);
      events.quiet = false;
    } catch (error) {
      const server = copy?.server;
      if (server) await bestEffort(() => server.close(), this.#deps.logger, `close the half-built copy of session ${id}`);
      if (error instanceof SharedStateUnavailableError) throw error;
      // Served nowhere rather than half-built: the client opens a new session on the 404.
      this.#deps.logger.warn({ err: error, session: id }, 'could not rebuild a session opened on another replica');
      return;
    }
    if (ended()) {
      await bestEffort(() => copy.server.close(), this.#deps.logger, `close the copy of session ${id}, which ended while it was built`);
      return;
    }
    const session = this.#deps.register(id, copyOwner, copy, record.streamHolder);
    this.#deps.logger.debug({ session: id }, 'session rebuilt from its record');
    // In the background: the request that asked for the copy is answered without waiting for
    // upstream round trips (a log level per upstream, a subscription each). The record read
    // above may be stale by then (a change announced before the copy was registered reached
    // nobody here), so the settings are read again when applied.
    if (record.logLevel !== undefined || record.subscriptions.length > 0) void this.refresh(session, authInfo, record);
  }

  async #apply(session: DownstreamSession<ReplicatedTransport>, record: SessionRecord, authInfo: AuthInfo): Promise<void> {
    session.streamHolder = record.streamHolder;
    const setting = async (message: { method: string; params: Record<string, unknown> }) => {
      const answer = await replay(session.transport, session.id, message, authInfo).catch((error: unknown) => ({ error }));
      if (answer && 'error' in answer) this.#deps.logger.debug({ session: session.id, method: message.method, error: answer.error }, 'a recorded session setting could not be applied here');
    };
    if (record.logLevel !== undefined && record.logLevel !== session.logLevel) await setting({ method: 'logging/setLevel', params: { level: record.logLevel } });
    const wanted = new Set(record.subscriptions);
    for (const uri of wanted) if (!session.subscriptions.has(uri)) await setting({ method: 'resources/subscribe', params: { uri } });
    for (const uri of [...session.subscriptions.keys()]) if (!wanted.has(uri)) await setting({ method: 'resources/unsubscribe', params: { uri } });
  }

  /** Runs `work` after the settings already being applied to `session`; a failure is logged and does not stop the queue. */
  #queued(session: DownstreamSession<ReplicatedTransport>, work: () => Promise<void>): Promise<void> {
    const next = (this.#settings.get(session) ?? Promise.resolve()).then(work).catch((error: unknown) => {
      this.#deps.logger.debug({ err: error, session: session.id }, 'could not apply the recorded settings of a session');
    });
    this.#settings.set(session, next);
    return next;
  }
}

/**
 * A session's event store that keeps out what replays write: everything while `quiet` (the
 * copy is being built and nothing else can reach it), and the answers to replayed requests
 * always. Events are a bounded window, and a replay's would push the client's own out of it.
 */
export function replayAwareEvents(store: EventStore, failures: EventStoreFailures): EventStore & { quiet: boolean } {
  const events = {
    quiet: false,
    storeEvent: (streamId: string, message: JSONRPCMessage): Promise<string> =>
      events.quiet || isReplayAnswer(message) ? Promise.resolve(`${UNSTORED}${streamId}`) : failures.storing(streamId, () => store.storeEvent(streamId, message)),
    getStreamIdForEventId: async (eventId: string) => (eventId.startsWith(UNSTORED) ? undefined : store.getStreamIdForEventId?.(eventId)),
    replayEventsAfter: (lastEventId: string, sender: Parameters<EventStore['replayEventsAfter']>[1]) => store.replayEventsAfter(lastEventId, sender),
  };
  return events;
}

/** The id of an event that was not stored: sent, but nothing can resume from it. */
const UNSTORED = 'unstored.';

/**
 * Event store failures, shared by every copy on this replica. A message whose event could not
 * be stored (the shared state down or slow) is still delivered live, under an id nothing
 * resumes from: the SDK transport would otherwise answer the request 400 (a priming event) or
 * drop the answer and leave its stream open (a later event). Logged once per streak.
 */
export class EventStoreFailures {
  readonly #logger: Logger;
  #failing = false;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async storing(streamId: string, store: () => Promise<string>): Promise<string> {
    try {
      const id = await store();
      if (this.#failing) {
        this.#failing = false;
        this.#logger.info('the event store answers again: streams are resumable again');
      }
      return id;
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true;
        this.#logger.warn({ err: error }, 'could not store an SSE event; messages are sent live, without a resume point, until the event store answers again');
      }
      return `${UNSTORED}${streamId}`;
    }
  }
}

function isReplayAnswer(message: JSONRPCMessage): boolean {
  const { id } = message as { id?: unknown };
  return typeof id === 'string' && id.startsWith(REPLAY_ID);
}

/**
 * Sends one message to a session's copy as its client would, and returns the answer (undefined
 * for a notification). Throws when the transport refuses it at the HTTP level.
 */
async function replay(
  transport: ReplicatedTransport,
  sessionId: string | undefined,
  message: { method: string; params?: Record<string, unknown> },
  authInfo: AuthInfo,
): Promise<{ result?: unknown; error?: unknown } | undefined> {
  const notification = message.method.startsWith('notifications/');
  const body = notification ? { jsonrpc: '2.0', ...message } : { jsonrpc: '2.0', id: `${REPLAY_ID}${randomUUID()}`, ...message };
  const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
  if (sessionId !== undefined) headers.set('mcp-session-id', sessionId);
  const replayed: AuthInfo = { ...authInfo, extra: { ...authInfo.extra, [REPLAY_FLAG]: true } };
  const response = await transport.handleRequest(new Request(INTERNAL_URL, { method: 'POST', headers, body: JSON.stringify(body) }), { parsedBody: body, authInfo: replayed });
  const text = await response.text();
  if (!response.ok) throw new Error(`${message.method} refused with HTTP ${response.status}: ${text}`);
  if (notification) return undefined;
  for (const line of text.split('\n')) {
    // Priming events carry no data.
    if (!line.startsWith('data: ') || line.length === 'data: '.length) continue;
    const parsed = JSON.parse(line.slice('data: '.length)) as { id?: unknown; result?: unknown; error?: unknown };
    if (parsed.id === (body as { id: string }).id) return parsed;
  }
  return undefined;
}

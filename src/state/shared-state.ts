import type { EventStore, JSONRPCMessage, LoggingLevel } from '@modelcontextprotocol/server';

/**
 * What replicas share: downstream session records, messages between replicas, and the SSE
 * events a client may resume from. In memory for one process (the default), in Redis when
 * `REDIS_URL` is set. Every call against Redis is bounded in time; a store that does not
 * answer rejects with `SharedStateUnavailableError` instead of hanging.
 */
export interface SharedState {
  /** `memory` or `redis`, for `/ready` and the log. */
  readonly backend: 'memory' | 'redis';
  /** This process's id among the replicas (random, fixed for its lifetime). */
  readonly replicaId: string;
  readonly sessions: SessionStore;
  readonly bus: ReplicaBus;
  /** Named leases: one replica at a time holds each (the owner of a `processes: one` stdio server). */
  readonly leases: LeaseStore;
  /** The event store of one session's SSE streams (every stream of it, on any replica). */
  eventsFor(sessionId: string): EventStore & { drop(): Promise<void> };
  /** Whether the backend answers now (one bounded round trip). */
  health(): Promise<'ok' | 'unavailable'>;
  close(): Promise<void>;
}

/**
 * A shared-state call that did not complete in time or failed to reach the backend. A backend
 * that answered with an error (Redis' own error reply) is not this: that error is passed on.
 */
export class SharedStateUnavailableError extends Error {
  override readonly name = 'SharedStateUnavailableError';
}

/** The wire a session was opened on; a session is only ever found on its own wire. */
export type SessionWire = 'streamable-http' | 'sse';

/**
 * What another replica needs to serve a session it did not open: who owns it, and the
 * client's own `initialize` params (replayed to rebuild the session's server, which then
 * negotiates exactly what it negotiated the first time).
 */
export interface SessionRecord {
  id: string;
  principal: string;
  rateKey: string;
  wire: SessionWire;
  initialize: { protocolVersion: string; capabilities: Record<string, unknown>; clientInfo: Record<string, unknown> };
  /** Set by `logging/setLevel`. */
  logLevel?: LoggingLevel | undefined;
  /** Exposed resource URIs the session subscribed to. */
  subscriptions: string[];
  /** The replica holding the session's GET stream (or its HTTP+SSE stream), while one is open. */
  streamHolder?: string | undefined;
  createdAt: number;
}

export type SessionRecordPatch = Partial<Pick<SessionRecord, 'logLevel' | 'subscriptions' | 'streamHolder'>>;

/** What the record must hold for an update to apply, checked atomically with the write. */
export interface SessionRecordCondition {
  /** The replica the record must name as its stream holder; `null`: it must name none. Absent: any. */
  ifStreamHolder?: string | null | undefined;
}

/** Whether `record` meets `condition` (every store judges it the same way). */
export function meetsCondition(record: SessionRecord, condition: SessionRecordCondition): boolean {
  const holder = condition.ifStreamHolder;
  return holder === undefined || (record.streamHolder ?? null) === holder;
}

export interface SessionStore {
  /**
   * Registers a new session when its rate key holds fewer than `maxPerKey` live sessions and the
   * store fewer than `maxTotal` (checked and counted atomically, across replicas). `'per-key'`
   * or `'total'` names the limit that refused it.
   */
  claim(record: SessionRecord, ttlMs: number, limits: { maxPerKey: number; maxTotal: number }): Promise<'ok' | 'per-key' | 'total'>;
  get(id: string): Promise<SessionRecord | undefined>;
  /** Extends the record's life (and its place in the quotas) by `ttlMs`; false when it is gone. */
  touch(id: string, ttlMs: number): Promise<boolean>;
  /**
   * Merges `patch` into the record, when it exists and meets `condition` (both judged with the
   * write, so no other replica's change lands in between). True when the patch was applied.
   */
  update(id: string, patch: SessionRecordPatch, condition?: SessionRecordCondition): Promise<boolean>;
  /**
   * Adds `uri` to the record's subscriptions, judged and written atomically (two replicas
   * adding different URIs at once both land). True when the record changed.
   */
  addSubscription(id: string, uri: string): Promise<boolean>;
  /** Takes `uri` from the record's subscriptions, atomically as `addSubscription`. True when the record changed. */
  removeSubscription(id: string, uri: string): Promise<boolean>;
  /** Removes the record and its quota places; true when it existed. */
  remove(id: string): Promise<boolean>;
  /** Live sessions under one rate key, on every replica. */
  countFor(rateKey: string): Promise<number>;
  /** Live sessions on every replica. */
  count(): Promise<number>;
}

/** What replicas tell each other. */
export type ReplicaMessage =
  /** A session ended (DELETE, idle, its credential): every replica drops its copy. */
  | { kind: 'session-closed'; session: string }
  /** A message for the client, to go out on the session's GET/SSE stream held by the addressee. */
  | { kind: 'to-client'; session: string; message: JSONRPCMessage }
  /** A message from the client (an answer to a request, a cancellation, an HTTP+SSE POST) for the replica that handles it. */
  | { kind: 'from-client'; session: string; message: JSONRPCMessage }
  /** A session's log level or subscriptions changed on one replica. */
  | { kind: 'session-changed'; session: string }
  /** Servers, access rules or API keys changed through one replica's API or CLI. */
  | { kind: 'config-changed'; what: 'servers' | 'access' | 'api-keys'; detail?: string | undefined }
  /** A request for whatever serves `topic` on the addressee (`state/bus-rpc.ts`); answered by an `rpc-reply` with the same id. */
  | { kind: 'rpc'; topic: string; id: string; payload: unknown }
  | { kind: 'rpc-reply'; id: string; ok: boolean; payload: unknown }
  /** A one-way message on `topic` (`state/bus-rpc.ts`). */
  | { kind: 'event'; topic: string; payload: unknown };

export interface ReplicaBus {
  /**
   * To one replica (by id); dropped when it is gone. False when nobody received it (a replica
   * that died without a word no longer listens), so the sender can do without it; a bus that
   * cannot tell answers nothing.
   */
  send(replica: string, message: ReplicaMessage): Promise<boolean | void>;
  /** To every other replica. */
  broadcast(message: ReplicaMessage): Promise<void>;
  /** Messages addressed to this replica or broadcast by another; returns the unsubscribe. */
  onMessage(handler: (message: ReplicaMessage, from: string) => void): () => void;
}

/**
 * Leases by name, held by one replica at a time until it lets go or stops renewing. Judged on
 * the backend's clock (Redis' own), so replicas whose clocks disagree still agree on who holds one.
 */
export interface LeaseStore {
  /**
   * Takes the lease for `ttlMs` when nobody holds it, or extends it when this replica does
   * under the same `keeper` (a value of the one holding it on this replica: a later keeper of
   * the same lease on this replica neither extends nor lets go of an earlier one's); true when
   * held so now.
   */
  acquire(name: string, ttlMs: number, keeper?: string): Promise<boolean>;
  /** The replica holding the lease, if any. */
  holder(name: string): Promise<string | undefined>;
  /** Lets go of the lease when this replica holds it under `keeper`. */
  release(name: string, keeper?: string): Promise<void>;
}

/** What a lease's value is: its replica, and the keeper there (the replica is what others read). */
export function leaseValue(replicaId: string, keeper: string | undefined): string {
  return keeper === undefined ? replicaId : `${replicaId} ${keeper}`;
}

/** The replica a lease's value names. */
export function leaseHolder(value: string): string {
  const space = value.indexOf(' ');
  return space < 0 ? value : value.slice(0, space);
}

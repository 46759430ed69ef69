import type { LoggingLevel, RequestId, Server, ServerCapabilities, Transport } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { Access } from '../auth/access-policy.js';
import type { Principal } from '../auth/principal.js';
import type { ResourceRoute } from '../catalog/resource-catalog.js';
import { LimitExceededError } from '../limits/errors.js';
import { bestEffort } from '../observability/best-effort.js';
import { sessionClosed } from './error-mapping.js';

/**
 * This replica's copy of one downstream MCP session: its server, its transport, and when it was
 * last used. The transport is Streamable HTTP (`/mcp`) or the older HTTP+SSE wire (`/sse`). The
 * session itself is its record in the shared state (see `session-records.ts`).
 */
export interface DownstreamSession<T extends Transport = Transport> {
  readonly id: string;
  /** Who opened the session; every later request on it must come from the same principal. */
  readonly principal: string;
  /**
   * What session quotas count against: the caller's rate key (`principal:<id>`, or
   * `ip:<address>` without authentication, where every caller is the same principal).
   */
  readonly rateKey: string;
  /** The rights evaluated for the latest request on this session (re-evaluated on delivery, see `accessOf`). */
  access: Access;
  readonly server: Server;
  /** What this session's server advertised at initialize. */
  readonly capabilities: ServerCapabilities;
  readonly transport: T;
  readonly createdAt: number;
  lastSeen: number;
  /**
   * Open GET streams. A stream alone does not keep a session alive: a session without a
   * request for the idle time is closed, which ends its streams.
   */
  openStreams: number;
  /**
   * Of those, the ones messages about no request go out on (the GET stream, not a replay of a
   * request's stream); an HTTP+SSE session's one stream. While there is one, this replica is
   * the session's `streamHolder`.
   */
  standaloneStreams: number;
  /**
   * The replica holding the session's GET stream as this copy last heard (the record's
   * `streamHolder`: kept up to date by this replica's own streams and by the other replicas'
   * `session-changed`), so a message about no request costs no read of the shared state.
   */
  streamHolder: string | undefined;
  /** `opened` here (an initialize, an HTTP+SSE stream), or `rebuilt` here from the record of a session opened elsewhere. */
  readonly origin: 'opened' | 'rebuilt';
  /** When this replica last extended the record's life (at most once per `TOUCH_INTERVAL_MS`). */
  touchedAt: number;
  /** When a sweep last found a tool call in flight: a call is use, however long it runs. */
  busyAt: number;
  /** Set by `logging/setLevel`; log messages below it are not sent to this session (see `log-levels.ts` for the default). */
  logLevel: LoggingLevel | undefined;
  /** Exposed URI → owner, for every resource this session subscribed to. */
  readonly subscriptions: Map<string, ResourceRoute>;
  /** Tool calls in flight, against `maxConcurrentCallsPerSession`. */
  activeCalls: number;
  /** Aborted when the session closes: work done for it (the fast path's tool calls) stops. */
  readonly lifetime: AbortController;
  /**
   * Requests handed to the session's transport whose answer stream is still open. When the
   * session closes they are cancelled and answered with an error: the transport would only
   * end their streams, and a client whose stream ends unanswered waits for ever.
   */
  readonly requestsInFlight: Set<RequestId>;
}

/** Runs `work` as one of `session`'s tool calls in flight; refused when `max` already are. */
export async function inCallSlot<T>(session: DownstreamSession | undefined, max: number, work: () => Promise<T>): Promise<T> {
  if (!session) return work();
  if (session.activeCalls >= max) throw new LimitExceededError(`too many concurrent tool calls in this session (at most ${max})`);
  session.activeCalls++;
  try {
    return await work();
  } finally {
    session.activeCalls--;
  }
}

/** Who opens a session, as the HTTP layer authenticated the `initialize`. */
export interface SessionOwner {
  principal: string;
  rateKey: string;
  access: Access;
}

/** The access rules in force, as the registry reads them. */
export interface AccessRules {
  readonly version: number;
  accessFor(principal: Principal): Access;
}

/**
 * A session's rights now: those of its latest request, re-evaluated when the rules changed since
 * (a revoked grant stops what is delivered to an open stream without waiting for a request).
 * Cached per rules version, since delivery may ask for every session.
 */
export class CurrentRights {
  readonly #current = new WeakMap<Access, { version: number; access: Access }>();
  readonly #rules: AccessRules | undefined;

  constructor(rules: AccessRules | undefined) {
    this.#rules = rules;
  }

  of(latest: Access): Access {
    const rules = this.#rules;
    if (!rules) return latest;
    const cached = this.#current.get(latest);
    if (cached && cached.version === rules.version) return cached.access;
    const access = rules.accessFor(latest.principal);
    this.#current.set(latest, { version: rules.version, access });
    return access;
  }
}

/**
 * Tool calls in flight that callers make without a session (2026-07-28 requests), per rate key,
 * refused beyond the limit a session's calls are held to, so that not opening one is no way
 * around it.
 */
export class CallerSlots {
  readonly #calls = new Map<string, number>();

  async run<T>(rateKey: string, max: number, work: () => Promise<T>): Promise<T> {
    const active = this.#calls.get(rateKey) ?? 0;
    if (active >= max) throw new LimitExceededError(`too many concurrent tool calls from this client (at most ${max})`);
    this.#calls.set(rateKey, active + 1);
    try {
      return await work();
    } finally {
      const left = (this.#calls.get(rateKey) ?? 1) - 1;
      if (left > 0) this.#calls.set(rateKey, left);
      else this.#calls.delete(rateKey);
    }
  }
}

/** A new copy of a session, used now, for `owner`. */
export function newSession<T extends Transport>(
  id: string,
  owner: SessionOwner,
  copy: { server: Server; capabilities: ServerCapabilities; transport: T },
  origin: 'opened' | 'rebuilt',
  streamHolder?: string,
): DownstreamSession<T> {
  const now = Date.now();
  return {
    id,
    principal: owner.principal,
    rateKey: owner.rateKey,
    access: owner.access,
    server: copy.server,
    capabilities: copy.capabilities,
    transport: copy.transport,
    createdAt: now,
    lastSeen: now,
    openStreams: 0,
    standaloneStreams: 0,
    streamHolder,
    origin,
    // Never: the first request extends the record's life.
    touchedAt: 0,
    busyAt: 0,
    logLevel: undefined,
    subscriptions: new Map(),
    activeCalls: 0,
    lifetime: new AbortController(),
    requestsInFlight: new Set(),
  };
}

/** Stops the session's calls in flight and answers them, before its transport ends their streams. */
export async function endCallsInFlight(session: DownstreamSession, logger: Logger): Promise<void> {
  const error = sessionClosed();
  session.lifetime.abort(error);
  const { transport } = session;
  const ids = [...session.requestsInFlight];
  session.requestsInFlight.clear();
  await Promise.all(
    ids.map((requestId) => {
      // Cancelled first, as a client's notifications/cancelled would be: the handler stops,
      // its upstream request is cancelled, and it sends no answer of its own after ours.
      transport.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: error.message } });
      const answer = { jsonrpc: '2.0' as const, id: requestId, error: { code: error.code, message: error.message } };
      return bestEffort(() => transport.send(answer, { relatedRequestId: requestId }), logger, 'answer a request of a closing session');
    }),
  );
}

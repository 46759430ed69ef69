import { ProtocolErrorCode, type LoggingMessageNotificationParams } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/schema.js';
import { withoutHopMeta } from '../upstream/hop-meta.js';
import type { UpstreamEventSink } from '../upstream/upstream-connection.js';
import type { CallTracker } from './call-tracker.js';
import type { DownstreamCall } from './downstream-call.js';
import { WireMcpError } from './error-mapping.js';
import { allows, thresholdOf } from './log-levels.js';
import type { DownstreamSession, SessionRegistry } from './session-registry.js';
import { bestEffort } from '../observability/best-effort.js';

/** The client capability each server-to-client request needs. */
const NEEDED_CAPABILITY: Record<string, 'sampling' | 'elicitation' | 'roots'> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** A human answering an elicitation or reviewing a sampling request may take a while. */
const CLIENT_REQUEST_TIMEOUT_MS = 10 * 60 * 1000;

/**
 * Carries what upstreams send on their own back to the right downstream session:
 * server-to-client requests and log messages to the session whose call caused them,
 * resource updates to the sessions subscribed to that resource. Log messages carry whatever
 * the upstream chose to write (paths, tokens, other users' data), so they reach only sessions
 * that may read the server, judged when the message arrives, at each session's own level.
 *
 * One user's own instance of a server (see `forPrincipal`) is that user's alone: what it says
 * reaches that user's calls and sessions only.
 */
export class UpstreamRelay implements UpstreamEventSink {
  constructor(
    private readonly tracker: CallTracker,
    private readonly sessions: SessionRegistry,
    private readonly logger: Logger,
    /** Set for one user's instance: its messages reach that principal only (`null`: a template's, nobody's). */
    private readonly only?: { principal: string | null },
  ) {}

  /** The relay for one user's instance (`undefined`: a template instance, which acts for nobody). */
  forPrincipal(principal: string | undefined): UpstreamRelay {
    return new UpstreamRelay(this.tracker, this.sessions, this.logger, { principal: principal ?? null });
  }

  async onServerRequest(
    server: string,
    request: { method: string; params?: Record<string, unknown> | undefined },
    signal: AbortSignal,
    owner: unknown,
    configuredRoots: NonNullable<ServerConfig['roots']>,
  ): Promise<Record<string, unknown>> {
    // Exact when the wire says which request this belongs to; else by the calls in flight.
    const call = (owner as DownstreamCall | undefined) ?? this.#attribute(server);
    if (request.method === 'roots/list' && !answersRoots(call)) {
      return { roots: [...configuredRoots] };
    }
    if (call === 'ambiguous') {
      throw new WireMcpError(ProtocolErrorCode.InternalError, `${request.method} refused: calls from several clients are in flight on "${server}" and the request names none of them`);
    }
    if (!call) {
      throw new WireMcpError(ProtocolErrorCode.InvalidRequest, `${request.method} is relayed only while a client's request to "${server}" is in flight`);
    }
    const capability = NEEDED_CAPABILITY[request.method];
    const declared = capability ? call.clientCapabilities?.[capability] : undefined;
    if (!declared || (request.method === 'elicitation/create' && !supportsElicitationMode(declared, request.params))) {
      throw new WireMcpError(ProtocolErrorCode.MethodNotFound, `the client does not support ${request.method}`);
    }
    const cancelled = AbortSignal.any([signal, call.signal]);
    // Reserved `_meta` keys belong to the hop they came on, in both directions.
    const answer = await call.sendRequest({ method: request.method, params: withoutHopMeta(request.params) }, { signal: cancelled, timeout: CLIENT_REQUEST_TIMEOUT_MS });
    return withoutHopMeta(answer);
  }

  onLogMessage(server: string, params: LoggingMessageNotificationParams, owner: unknown): void {
    const call = (owner as DownstreamCall | undefined) ?? this.#attribute(server);
    if (call === 'ambiguous') return;
    if (call) this.logToCall(server, logNotification(server, params), call);
    else this.logToSessions(server, params);
  }

  /**
   * A log message caused by `call`: only on that call's own stream, so only to the session (and
   * so the principal) that made it, and only while it may still read the server.
   */
  logToCall(server: string, notification: LogNotification, call: DownstreamCall): void {
    const session = this.sessions.get(call.sessionId);
    const access = session ? this.sessions.accessOf(session) : call.access;
    // The session's level as it is now; without a session, the level the request named.
    if (access.visible(server) && allows(thresholdOf(session?.logLevel ?? call.logLevel), notification.params.level)) {
      // Calls in flight are the ones forward() tracks, whose sendNotification logs its own failure and never rejects.
      void call.sendNotification(notification).catch(() => {});
    }
  }

  /**
   * A log message caused by no request: only sessions that asked for logs (with
   * logging/setLevel) and may read the server get it. `copies` picks the copies of a session
   * that deliver it, when every replica hears the message (a `processes: one` server's).
   */
  logToSessions(server: string, params: LoggingMessageNotificationParams, copies: (session: DownstreamSession) => boolean = everyCopy): void {
    const notification = logNotification(server, params);
    for (const session of this.#sessions()) {
      if (session.logLevel && allows(session.logLevel, params.level) && copies(session) && this.sessions.accessOf(session).visible(server)) {
        void bestEffort(() => session.server.notification(notification), this.logger, `relay a log message from "${server}" to session ${session.id}`);
      }
    }
  }

  /** A resource update, to the sessions subscribed to it (`copies` as for `logToSessions`). */
  onResourceUpdated(server: string, uri: string, copies: (session: DownstreamSession) => boolean = everyCopy): void {
    for (const session of this.#sessions()) {
      if (session.subscriptions.size === 0 || !copies(session) || !this.sessions.accessOf(session).visible(server)) continue;
      for (const [exposedUri, route] of session.subscriptions) {
        if (route.server === server && route.originalUri === uri) {
          void bestEffort(() => session.server.sendResourceUpdated({ uri: exposedUri }), this.logger, `send notifications/resources/updated to session ${session.id}`);
        }
      }
    }
  }

  /** The call in flight an unattributed message belongs to, among this relay's principal's calls when it has one. */
  #attribute(server: string): DownstreamCall | 'ambiguous' | undefined {
    if (this.only?.principal === null) return undefined;
    return this.tracker.attribute(server, this.only?.principal);
  }

  /** The sessions this relay may deliver to. */
  *#sessions(): Iterable<DownstreamSession> {
    for (const session of this.sessions.all()) {
      if (!this.only || session.principal === this.only.principal) yield session;
    }
  }
}

/** A log message as a client gets it: its logger named after the server it came from. */
export interface LogNotification {
  method: 'notifications/message';
  params: LoggingMessageNotificationParams;
}

function logNotification(server: string, params: LoggingMessageNotificationParams): LogNotification {
  return { method: 'notifications/message', params: { ...params, logger: params.logger ? `${server}/${params.logger}` : server } };
}

const everyCopy = () => true;

/**
 * Whether `roots/list` goes to the calling client. Otherwise the gateway answers it with the
 * server's configured roots, because in each other case there is no client to ask, and the
 * gateway (the upstream's one client, which declared `roots` at initialize) must answer:
 * - no call in flight: servers ask right after initialize and on list changes, on their own
 *   (server-filesystem does); an error there reads as a failed start;
 * - calls of several sessions in flight: the configured roots are nobody's data, so answering
 *   them cannot hand one session's roots to another, and a refusal would make the answer
 *   depend on unrelated traffic;
 * - a caller that did not declare `roots`: it has none to offer, and a method-not-found would
 *   contradict the capability the shared connection declared; the configured roots are the
 *   operator's statement of where this server may work, the same answer it gets at start.
 */
function answersRoots(call: DownstreamCall | 'ambiguous' | undefined): call is DownstreamCall {
  return call !== undefined && call !== 'ambiguous' && call.clientCapabilities?.roots !== undefined;
}

function supportsElicitationMode(declared: object, params: Record<string, unknown> | undefined): boolean {
  const mode = (params?.mode as string | undefined) ?? 'form';
  const modes = declared as { form?: unknown; url?: unknown };
  // A client that declares `elicitation: {}` supports form mode only (2025-11-25).
  if (modes.form === undefined && modes.url === undefined) return mode === 'form';
  return modes[mode as 'form' | 'url'] !== undefined;
}

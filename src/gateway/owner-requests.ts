import { randomUUID } from 'node:crypto';
import type { LoggingMessageNotificationParams, Progress } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { Access } from '../auth/access-policy.js';
import { bestEffort } from '../observability/best-effort.js';
import { ReplicaUnreachableError, type BusRpc } from '../state/bus-rpc.js';
import type { SharedState } from '../state/shared-state.js';
import { UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from '../upstream/errors.js';
import type { OwnerLink, OwnerView, SingleOwnerServer } from '../upstream/single-owner-server.js';
import type { UpstreamEventSink, UpstreamRequestOptions } from '../upstream/upstream-connection.js';
import type { CallTracker } from './call-tracker.js';
import type { DownstreamCall, OutboundMessage } from './downstream-call.js';
import type { DownstreamSession } from './downstream-session.js';
import {
  AskCancelSchema,
  AskSchema,
  CancelSchema,
  LogEventSchema,
  NotifySchema,
  ProgressEventSchema,
  RequestSchema,
  ResourceUpdatedSchema,
  ResultSchema,
  ServerNameSchema,
  TOPICS,
  ViewEventSchema,
  HolderIncidentError,
  asView,
  localError,
  type CallIdentity,
  type RequestPayload,
} from './owner-wire.js';
import { isExpectedError, reportIncident } from './error-mapping.js';
import type { UpstreamRelay } from './upstream-relay.js';

/** How long past its own timeout a request waits for the replica running the process (which enforces the timeout itself). */
const ANSWER_MARGIN_MS = 5000;
/** A client asked mid-call (an elicitation a human answers) may take this long, as `UpstreamRelay` allows. */
const CLIENT_REQUEST_TIMEOUT_MS = 10 * 60 * 1000;
/** The longest a timer may be; the request's own watchdog decides when it is late. */
const NO_BUS_TIMEOUT_MS = 2 ** 31 - 1;

export interface OwnerRequestsDeps {
  rpc: BusRpc;
  state: Pick<SharedState, 'replicaId' | 'leases'>;
  tracker: CallTracker;
  relay: UpstreamRelay;
  logger: Logger;
}

/** A request this replica sent to the process on another: what its messages about it are delivered to. */
interface Outgoing {
  holder: string;
  server: string;
  call: DownstreamCall | undefined;
  onprogress: ((progress: Progress) => void) | undefined;
  /** Requests for the client in flight, by their id, to be cancelled. */
  asks: Map<string, AbortController>;
}

/**
 * The replica bus side of `processes: one` stdio servers (see `upstream/single-owner-server.ts`).
 *
 * On the replica running the process, a request from another one runs on the process with a
 * stand-in for its downstream call in the call tracker: whatever the process asks the client or
 * logs about it (attributed as on any stdio server) goes back over the bus to the replica that
 * has the real call, which delivers it, judging the caller's rights there. Its progress goes
 * back the same way; the caller's cancellation comes the other way. What the process says about
 * no call (log messages, resource updates) reaches every replica, each delivering it to its own
 * sessions.
 */
export class OwnerRequests implements OwnerLink {
  readonly #deps: OwnerRequestsDeps;
  readonly #servers = new Map<string, SingleOwnerServer>();
  /** Requests from other replicas running here, by `<replica> <id>`, to cancel them. */
  readonly #incoming = new Map<string, AbortController>();
  readonly #outgoing = new Map<string, Outgoing>();
  readonly #stops: (() => void)[];
  /** Set once this replica began to stop: requests from other replicas are refused from then on. */
  #draining = false;
  readonly events: UpstreamEventSink;

  constructor(deps: OwnerRequestsDeps) {
    this.#deps = deps;
    const { rpc } = deps;
    this.events = this.#processEvents();
    this.#stops = [
      rpc.serve(TOPICS.request, (payload, from) => this.#serveRequest(RequestSchema.parse(payload), from)),
      rpc.on(TOPICS.cancel, (payload, from) => {
        const { id, reason } = CancelSchema.parse(payload);
        this.#incoming.get(`${from} ${id}`)?.abort(reason);
      }),
      rpc.serve(TOPICS.view, (payload) => {
        const { server } = ServerNameSchema.parse(payload);
        const view = this.#servers.get(server)?.view();
        if (!view) throw new UpstreamUnavailableError(server, `its process does not run on gateway process ${deps.state.replicaId}`);
        return view;
      }),
      rpc.serve(TOPICS.restart, async (payload) => {
        const server = this.#servers.get(ServerNameSchema.parse(payload).server);
        if (!server?.running) throw new UpstreamUnavailableError(server?.name ?? 'unknown', `its process does not run on gateway process ${deps.state.replicaId}`);
        await server.restartProcess();
      }),
      rpc.on(TOPICS.views, (payload, from) => {
        const { server, view } = ViewEventSchema.parse(payload);
        this.#servers.get(server)?.heard(from, asView(view));
      }),
      rpc.on(TOPICS.released, (payload) => this.#servers.get(ServerNameSchema.parse(payload).server)?.lookAgain()),
      rpc.on(TOPICS.log, (payload, from) => {
        const { server, params } = LogEventSchema.parse(payload);
        if (this.#runsOn(server, from)) deps.relay.logToSessions(server, params as LoggingMessageNotificationParams, (session) => this.#speaksFor(session));
      }),
      rpc.on(TOPICS.resourceUpdated, (payload, from) => {
        const { server, uri } = ResourceUpdatedSchema.parse(payload);
        if (this.#runsOn(server, from)) deps.relay.onResourceUpdated(server, uri, (session) => this.#speaksFor(session));
      }),
      rpc.on(TOPICS.progress, (payload, from) => {
        const { id, progress } = ProgressEventSchema.parse(payload);
        this.#from(id, from)?.onprogress?.(progress);
      }),
      rpc.on(TOPICS.notify, (payload, from) => {
        const { id, notification } = NotifySchema.parse(payload);
        const outgoing = this.#from(id, from);
        // Judged again here, where the caller's session and rights are known as they are now.
        if (outgoing?.call) deps.relay.logToCall(outgoing.server, { method: notification.method, params: notification.params as LoggingMessageNotificationParams }, outgoing.call);
      }),
      rpc.serve(TOPICS.ask, (payload, from) => this.#answerAsk(AskSchema.parse(payload), from)),
      rpc.on(TOPICS.askCancel, (payload, from) => {
        const { id, ask } = AskCancelSchema.parse(payload);
        this.#from(id, from)?.asks.get(ask)?.abort('cancelled by the upstream');
      }),
    ];
  }

  get replicaId(): string {
    return this.#deps.state.replicaId;
  }

  get leases(): SharedState['leases'] {
    return this.#deps.state.leases;
  }

  attach(server: SingleOwnerServer): () => void {
    this.#servers.set(server.name, server);
    return () => {
      if (this.#servers.get(server.name) === server) this.#servers.delete(server.name);
    };
  }

  publish(server: string, view: OwnerView): void {
    void bestEffort(() => this.#deps.rpc.broadcast(TOPICS.views, { server, view }), this.#deps.logger, `tell the other gateway processes how "${server}" looks`);
  }

  async fetch(holder: string, server: string): Promise<OwnerView> {
    const answer = await this.#deps.rpc.call(holder, TOPICS.view, { server }, { timeoutMs: ANSWER_MARGIN_MS });
    return asView(ViewEventSchema.shape.view.parse(answer));
  }

  async restart(holder: string, server: string): Promise<void> {
    try {
      await this.#deps.rpc.call(holder, TOPICS.restart, { server }, { timeoutMs: 30_000 });
    } catch (error) {
      throw localError(error, server, 'restart');
    }
  }

  released(server: string): void {
    void bestEffort(() => this.#deps.rpc.broadcast(TOPICS.released, { server }), this.#deps.logger, `tell the other gateway processes that "${server}" is free to take`);
  }

  /**
   * Sends a request to the process on `holder`. It fails as a lost connection when `lost` aborts
   * (the lease moved) or no answer comes within its timeout and a margin (restarted by each
   * progress report when the timeout is), and with the caller's reason when the caller cancels,
   * which the holder is told.
   */
  async request(
    holder: string,
    server: string,
    method: string,
    params: Record<string, unknown> | undefined,
    options: UpstreamRequestOptions & { timeout: number },
    owner: unknown,
    lost: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const { rpc } = this.#deps;
    const id = randomUUID();
    const call = asCall(owner);
    const late = new AbortController();
    let watchdog: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => late.abort(), options.timeout + ANSWER_MARGIN_MS);
    };
    const onprogress = options.onprogress;
    this.#outgoing.set(id, {
      holder,
      server,
      call,
      onprogress: onprogress
        ? (progress) => {
            if (options.resetTimeoutOnProgress) arm();
            onprogress(progress);
          }
        : undefined,
      asks: new Map(),
    });
    const cancelled = () => void bestEffort(() => rpc.emit(holder, TOPICS.cancel, { id, reason: String(options.signal?.reason ?? 'cancelled') }), this.#deps.logger, `cancel a request on "${server}"`);
    options.signal?.addEventListener('abort', cancelled, { once: true });
    const payload: RequestPayload = {
      id,
      server,
      method,
      params,
      options: {
        timeout: options.timeout,
        resetTimeoutOnProgress: options.resetTimeoutOnProgress,
        tasks: options.tasks,
        clientCapabilities: options.clientCapabilities,
        logLevel: options.logLevel,
        progress: onprogress !== undefined,
      },
      call: call && identityOf(call),
    };
    arm();
    try {
      const signals = [lost, late.signal, ...(options.signal ? [options.signal] : [])];
      return ResultSchema.parse(await rpc.call(holder, TOPICS.request, payload, { timeoutMs: NO_BUS_TIMEOUT_MS, signal: AbortSignal.any(signals) }));
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (lost.aborted) throw new UpstreamConnectionLostError(server, method, String(lost.reason));
      if (late.signal.aborted) throw new UpstreamTimeoutError(server, method, options.timeout);
      // Nobody of that id listens on the bus: it is gone, and the lease is looked at now.
      if (error instanceof ReplicaUnreachableError) this.#servers.get(server)?.lookAgain();
      throw localError(error, server, method);
    } finally {
      clearTimeout(watchdog);
      options.signal?.removeEventListener('abort', cancelled);
      for (const ask of this.#outgoing.get(id)?.asks.values() ?? []) ask.abort('the request ended');
      this.#outgoing.delete(id);
    }
  }

  /**
   * This replica began to stop: a request another one sends from now on is refused at once as
   * an unavailable server, to be tried again, rather than started on a process about to stop.
   * Those already running go on until `close`.
   */
  drain(): void {
    this.#draining = true;
  }

  /** Fails the requests still waiting on other replicas and serves nothing more. */
  close(): void {
    for (const stop of this.#stops) stop();
    for (const controller of this.#incoming.values()) controller.abort('the gateway is stopping');
  }

  /** The process's own messages, here: to this replica's calls and sessions, and those about no call to every replica too. */
  #processEvents(): UpstreamEventSink {
    const { relay, tracker, rpc, logger } = this.#deps;
    const everywhere = (topic: string, payload: unknown, what: string) => void bestEffort(() => rpc.broadcast(topic, payload), logger, what);
    return {
      onServerRequest: (server, request, signal, owner, roots) => relay.onServerRequest(server, request, signal, owner, roots),
      onLogMessage: (server, params, owner) => {
        const call = (owner as DownstreamCall | undefined) ?? tracker.attribute(server);
        if (call === 'ambiguous') return;
        if (call) return relay.onLogMessage(server, params, call);
        everywhere(TOPICS.log, { server, params }, `relay a log message of "${server}" to the other gateway processes`);
        relay.logToSessions(server, params, (session) => this.#speaksFor(session));
      },
      onResourceUpdated: (server, uri) => {
        everywhere(TOPICS.resourceUpdated, { server, uri }, `relay a resource update of "${server}" to the other gateway processes`);
        relay.onResourceUpdated(server, uri, (session) => this.#speaksFor(session));
      },
    };
  }

  /** Runs another replica's request on the process here, its call stood in for by one whose messages go back to that replica. */
  async #serveRequest(request: RequestPayload, from: string): Promise<Record<string, unknown>> {
    const { id, server: name, method, params, options } = request;
    const server = this.#servers.get(name);
    if (!server?.running) throw new UpstreamUnavailableError(name, `its process does not run on gateway process ${this.replicaId}`);
    if (this.#draining) throw new UpstreamUnavailableError(name, 'the gateway process running it is stopping; try again shortly');
    const key = `${from} ${id}`;
    const controller = new AbortController();
    this.#incoming.set(key, controller);
    const call = request.call && this.#standIn(name, id, from, request.call, controller.signal);
    const end = call ? this.#deps.tracker.begin(name, call) : undefined;
    const { rpc, logger } = this.#deps;
    try {
      return await server.requestFor(
        from,
        method,
        params,
        {
          signal: controller.signal,
          timeout: options.timeout,
          resetTimeoutOnProgress: options.resetTimeoutOnProgress,
          tasks: options.tasks,
          clientCapabilities: options.clientCapabilities,
          logLevel: options.logLevel,
          onprogress: options.progress ? (progress) => void bestEffort(() => rpc.emit(from, TOPICS.progress, { id, progress }), logger, 'relay progress to the calling gateway process') : undefined,
        },
        call,
      );
    } catch (error) {
      if (isExpectedError(error)) throw error;
      // Logged here, where it happened; the caller's replica gets the incident id only.
      throw new HolderIncidentError(reportIncident(error, logger, { server: name, method, from }).message);
    } finally {
      end?.();
      this.#incoming.delete(key);
    }
  }

  /** The call of another replica, as the process here sees it: its messages go back to that replica. */
  #standIn(server: string, id: string, from: string, identity: CallIdentity, signal: AbortSignal): DownstreamCall {
    const { rpc, logger } = this.#deps;
    return {
      principal: identity.principal,
      access: accessToOnly(server, identity.principal),
      channel: identity.channel,
      sessionId: identity.sessionId,
      requestId: identity.requestId,
      clientCapabilities: identity.clientCapabilities,
      logLevel: identity.logLevel,
      signal,
      sendNotification: (notification) => bestEffort(() => rpc.emit(from, TOPICS.notify, { id, notification }), logger, `relay ${notification.method} to the calling gateway process`),
      sendRequest: (request, options) => this.#ask(server, from, id, request, options),
    };
  }

  /** Asks the client of a call on another replica (what the process asked it), through that replica. */
  async #ask(server: string, from: string, id: string, request: OutboundMessage, options: { signal?: AbortSignal; timeout?: number } = {}): Promise<Record<string, unknown>> {
    const { rpc, logger } = this.#deps;
    const ask = randomUUID();
    const timeout = options.timeout ?? CLIENT_REQUEST_TIMEOUT_MS;
    const cancelled = () => void bestEffort(() => rpc.emit(from, TOPICS.askCancel, { id, ask }), logger, `cancel ${request.method} on the calling gateway process`);
    options.signal?.addEventListener('abort', cancelled, { once: true });
    try {
      return ResultSchema.parse(await rpc.call(from, TOPICS.ask, { id, ask, request, timeout }, { timeoutMs: timeout + ANSWER_MARGIN_MS, signal: options.signal }));
    } catch (error) {
      throw localError(error, server, request.method);
    } finally {
      options.signal?.removeEventListener('abort', cancelled);
    }
  }

  /** The process on another replica asks the client of a call made here. */
  async #answerAsk(payload: { id: string; ask: string; request: OutboundMessage; timeout?: number | undefined }, from: string): Promise<Record<string, unknown>> {
    const outgoing = this.#from(payload.id, from);
    if (!outgoing?.call) throw new UpstreamUnavailableError(outgoing?.server ?? 'unknown', `${payload.request.method} names no call in flight here`);
    const controller = new AbortController();
    outgoing.asks.set(payload.ask, controller);
    try {
      return await outgoing.call.sendRequest(payload.request, {
        signal: AbortSignal.any([controller.signal, outgoing.call.signal]),
        timeout: payload.timeout ?? CLIENT_REQUEST_TIMEOUT_MS,
      });
    } finally {
      outgoing.asks.delete(payload.ask);
    }
  }

  /** A request of this replica, when `from` is the replica it was sent to (nobody else speaks about it). */
  #from(id: string, from: string): Outgoing | undefined {
    const outgoing = this.#outgoing.get(id);
    return outgoing?.holder === from ? outgoing : undefined;
  }

  /** Whether `from` runs the process of `server`, as this replica knows. */
  #runsOn(server: string, from: string): boolean {
    return this.#servers.get(server)?.holder === from;
  }

  /**
   * Whether this copy of a session delivers what every replica hears: the copy holding its GET
   * stream, or with none open, the one on the replica that opened it (as list changes go, see
   * `ReplicaRouting.notifyListsChanged`), so that a session with copies on several replicas
   * gets it once.
   */
  #speaksFor(session: DownstreamSession): boolean {
    const holder = session.streamHolder;
    return session.standaloneStreams > 0 || (session.origin === 'opened' && (holder === undefined || holder === this.replicaId));
  }
}

/** The downstream call `forward()` passes as a request's owner; anything else has no client behind it. */
function asCall(owner: unknown): DownstreamCall | undefined {
  const call = owner as Partial<DownstreamCall> | undefined;
  return typeof call?.sendRequest === 'function' && typeof call.sendNotification === 'function' && typeof call.principal === 'string' ? (call as DownstreamCall) : undefined;
}

function identityOf(call: DownstreamCall): CallIdentity {
  return {
    principal: call.principal,
    channel: call.channel,
    sessionId: call.sessionId,
    requestId: call.requestId,
    clientCapabilities: call.clientCapabilities,
    logLevel: call.logLevel,
  };
}

/**
 * The rights of a stand-in: the one server it called. The caller's replica judged them for the
 * call, and judges them again for each message it delivers; the holder's own checks (a log
 * line's reader must see the server) then pass.
 */
function accessToOnly(server: string, principal: string): Access {
  return {
    principal: { id: principal, subject: principal, groups: [], roles: [], scopes: [], method: 'none' },
    admin: false,
    unrestricted: false,
    key: `stand-in:${principal}:${server}`,
    level: (name) => (name === server ? 'call' : 'none'),
    visible: (name) => name === server,
  };
}

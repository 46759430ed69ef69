import {
  Client,
  type LoggingLevel,
  type LoggingMessageNotificationParams,
  type PriorDiscovery,
  type Prompt,
  type Resource,
  type ResourceTemplateType,
  type ServerCapabilities,
  type Tool,
} from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { isReplicated, type ServerConfig } from '../config/schema.js';
import { bestEffort } from '../observability/best-effort.js';
import { authSecrets, textRedactor } from '../observability/redact.js';
import { RecentCredentials, observedAuth } from './auth/observed-auth.js';
import type { UpstreamAuth, UpstreamAuthError } from './auth/upstream-auth.js';
import { ChangeStream } from './change-stream.js';
import type { ChildProcessGroups } from './child-processes.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { AbortableAttempt, closeSession, openSession } from './connect-attempt.js';
import { ConnectionLifecycle } from './connection-lifecycle.js';
import { FailureNotes, reportedState, type UpstreamState, type UpstreamStatus } from './connection-status.js';
import { STDIO_PROBE_TIMEOUT_MS } from './era-negotiation.js';
import { EraMemory, InMemoryEraVerdicts, type EraVerdictStore } from './era-verdicts.js';
import { UpstreamUnavailableError } from './errors.js';
import { classifyConnectFailure, describeError } from './failure-classification.js';
import type { HealthMonitor } from './health-monitor.js';
import { HeldSession } from './held-session.js';
import { InFlightRequests } from './in-flight.js';
import { OwnerChannel } from './owner-channel.js';
import type { ReconnectPolicy } from './reconnect-schedule.js';
import type { UpstreamRequestOptions } from './request-envelope.js';
import { GarbledOutput, RequestForwarder, type PassThroughResult } from './request-forwarding.js';
import { SessionCarryOver } from './session-carry-over.js';
import { watchSession, type HealthPolicy } from './session-health.js';
import { createUpstreamClient } from './upstream-client.js';
import { EVERY_LIST, UpstreamLists, type ListSelection } from './upstream-lists.js';

export { isInputRequired } from './input-required.js';
// The connection's public types live beside the parts that use them; callers name them here.
export type { HealthPolicy } from './session-health.js';
export type { ReconnectPolicy } from './reconnect-schedule.js';
export type { UpstreamRequestOptions } from './request-envelope.js';
export type { UpstreamState, UpstreamStatus } from './connection-status.js';

/**
 * Where an upstream's own messages go: server-to-client requests, log messages and resource
 * updates. The gateway decides which downstream session each belongs to.
 */
export interface UpstreamEventSink {
  /**
   * `owner` is the `owner` of the request whose response stream carried this message, when the
   * wire tells (Streamable HTTP); undefined when it cannot (stdio, SSE, the GET stream).
   * `configuredRoots` are the server's `roots` from its config, the answer to `roots/list`
   * when no client can give one.
   */
  onServerRequest(
    server: string,
    request: { method: string; params?: Record<string, unknown> | undefined },
    signal: AbortSignal,
    owner: unknown,
    configuredRoots: NonNullable<ServerConfig['roots']>,
  ): Promise<Record<string, unknown>>;
  onLogMessage(server: string, params: LoggingMessageNotificationParams, owner: unknown): void;
  onResourceUpdated(server: string, uri: string): void;
}

export interface UpstreamDeps {
  logger: Logger;
  events: UpstreamEventSink;
  groups: ChildProcessGroups;
  reconnect: ReconnectPolicy;
  health: HealthPolicy;
  /** Called on every reconnect attempt after a failure. */
  onRestart?: (server: string) => void;
  /** Called whenever state or the tool list changes. */
  onChange: (upstream: UpstreamConnection) => void;
  /** The clock for uptime and the restart budget; `Date.now` unless a test needs another. */
  now?: () => number;
  /** Each server's protocol era as last found out, shared by its reconnects (one per connection when not given). */
  verdicts?: EraVerdictStore;
  /**
   * This connection's key in `verdicts`: the server's name unless given. A replica of a server
   * with `urls` has its own (`replicaVerdictKey`), since replicas part way through a rolling
   * upgrade speak different eras.
   */
  eraKey?: string | undefined;
  /**
   * Whether a 2025 connection subscribes its new upstream session, after a reconnect, to the
   * resources its previous one was subscribed to (default). A replica of a server with `urls`
   * does not: its server decides where each subscription goes (`replica-subscriptions.ts`).
   */
  resubscribes?: boolean | undefined;
  /** How this connection authenticates to its upstream; the connection owns it (closes it on stop). */
  auth?: UpstreamAuth | undefined;
}

/**
 * One upstream MCP server: its SDK client, its state, its tools, and its reconnects.
 * A connection attempt that fails, or a connection that drops, is retried with
 * exponential backoff and jitter until `stop()`. The parts it wires: `connection-lifecycle.ts`
 * (its state, generations and retries), `connect-attempt.ts` (opening a session),
 * `held-session.ts` (the session it holds), `session-carry-over.ts` (what a replacement
 * session is given), `change-stream.ts` (2026-07-28 list changes), `upstream-lists.ts`,
 * `session-health.ts`, `request-forwarding.ts` and `request-envelope.ts` (one request out,
 * its answer or failure back), `connection-status.ts`.
 */
export class UpstreamConnection {
  readonly #lifecycle: ConnectionLifecycle;
  readonly #session = new HeldSession();
  readonly #lists = new UpstreamLists();

  readonly #deps: UpstreamDeps;
  /** Hides this server's env and header values, the credentials it was sent, and token-shaped text (see `observability/redact.ts`). */
  readonly #redact: (text: string) => string;
  /** The connection's auth, watched so that what it sends is known to `#redact`. */
  readonly #auth: UpstreamAuth | undefined;
  /** Why the upstream last failed, and why the last attempt could not authenticate (a request while not ready is told this, not just "down"). */
  readonly #failure: FailureNotes;
  readonly #logger: Logger;
  #monitor: HealthMonitor | undefined;
  /** The log level and resource subscriptions a new session is given of its predecessor's. */
  readonly #carryOver: SessionCarryOver;
  /** The `subscriptions/listen` stream of a 2026-07-28 connection (list changes and resource updates arrive only there). */
  readonly #changes: ChangeStream;
  /** This server's remembered protocol era. */
  readonly #era: EraMemory;
  /** The last output that was not JSON-RPC: a request can tell whether its answer was one. */
  readonly #garbled: GarbledOutput;
  readonly #breaker: CircuitBreaker;
  /**
   * Who a request is for, carried through the SDK client into the transport (which sends the
   * request) and back out with the messages that arrive on that request's own response stream.
   */
  readonly #owners = new OwnerChannel();
  readonly #forwarder: RequestForwarder;
  /** The connection attempt under way: `stop()` gives it up, and waits for its child to be gone. */
  readonly #attempt = new AbortableAttempt();
  #config: ServerConfig;
  readonly #inFlight = new InFlightRequests();

  constructor(
    readonly name: string,
    config: ServerConfig,
    deps: UpstreamDeps,
  ) {
    this.#config = config;
    this.#deps = deps;
    const now = deps.now ?? Date.now;
    this.#logger = deps.logger.child({ server: name });
    this.#lifecycle = new ConnectionLifecycle({
      reconnect: deps.reconnect,
      now,
      enabled: config.enabled,
      onChange: () => deps.onChange(this),
      onRestart: () => deps.onRestart?.(name),
    });
    this.#breaker = new CircuitBreaker({ ...deps.health.breaker, now });
    this.#era = new EraMemory(deps.verdicts ?? new InMemoryEraVerdicts(), deps.eraKey ?? name, this.#logger, now);
    const sent = new RecentCredentials();
    this.#auth = deps.auth ? observedAuth(deps.auth, sent) : undefined;
    const written = config.transport === 'stdio' ? [] : authSecrets(config.auth);
    this.#redact = textRedactor(config.transport === 'stdio' ? { env: config.env, args: config.args } : { headers: config.headers, url: isReplicated(config) ? undefined : config.url }, () => [...written, ...sent.values()]);
    this.#failure = new FailureNotes(this.#redact);
    this.#garbled = new GarbledOutput(this.#logger, this.#redact);
    this.#carryOver = new SessionCarryOver({ resubscribes: deps.resubscribes !== false, logger: this.#logger });
    this.#changes = new ChangeStream({ server: name, subscriptions: this.#carryOver.subscriptions, backoff: deps.reconnect, logger: this.#logger, redact: this.#redact });
    this.#forwarder = new RequestForwarder({
      server: name,
      breaker: this.#breaker,
      owners: this.#owners,
      garbled: this.#garbled,
      failure: this.#failure,
      redact: this.#redact,
      changes: this.#changes,
      carryOver: this.#carryOver,
    });
  }

  /** The server's definition; its catalog settings may change while it runs (`updateCatalogSettings`). */
  get config(): ServerConfig {
    return this.#config;
  }

  /**
   * Takes a definition that differs from the running one in catalog settings only (see
   * `config/server-changes.ts`): nothing the connection reads changes, so it keeps running.
   */
  updateCatalogSettings(config: ServerConfig): void {
    this.#config = config;
  }

  /** True once no request is in flight here, false when `ms` pass first (a replaced connection is stopped after that). */
  drained(ms: number): Promise<boolean> {
    return this.#inFlight.idleWithin(ms);
  }

  /** The connection's own state; `health` is what to report. */
  get state(): UpstreamState {
    return this.#lifecycle.state;
  }

  /** The last lists the upstream reported (kept while it is down). */
  get tools(): readonly Tool[] {
    return this.#lists.tools;
  }

  get prompts(): readonly Prompt[] {
    return this.#lists.prompts;
  }

  get resources(): readonly Resource[] {
    return this.#lists.resources;
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#lists.resourceTemplates;
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#session.capabilities;
  }

  /**
   * What the server's initialize result told its clients about using it; set while it is
   * ready, cleared when the connection ends (a reconnect reads it afresh).
   */
  get instructions(): string | undefined {
    return this.#session.instructions;
  }

  /** Why the last connection attempt could not authenticate (the error, with its URL to authorise at), if that was why. */
  get authFailure(): UpstreamAuthError | undefined {
    return this.#failure.authFailure;
  }

  /** Why the upstream last failed, redacted (see `FailureNotes`): it reaches `/servers` and tool errors. */
  get lastError(): string | undefined {
    return this.#failure.lastError;
  }

  /** The state to report: a connected server whose breaker is not closed or whose pings fail is `degraded`. */
  get health(): UpstreamState {
    return reportedState(this.state, this.#breaker.state, this.#monitor?.failures ?? 0);
  }

  /** The circuit breaker's state, without building a whole `status()`. */
  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /**
   * Whether a request sent now would go out: connected, and the breaker would let it through
   * (a half-open one whose single probe is already out would refuse it before sending).
   */
  get takesRequests(): boolean {
    return this.state === 'ready' && this.#session.client !== undefined && this.#breaker.allowing;
  }

  get timeoutMs(): number {
    return this.config.timeout * 1000;
  }

  /** Starting a process and initializing can take longer than a short per-call timeout. */
  get connectTimeoutMs(): number {
    return (this.config.connectTimeout ?? Math.max(this.config.timeout, 10)) * 1000;
  }

  /** Begins connecting in the background; never throws. */
  start(): void {
    if (this.#lifecycle.startable) this.#beginConnect();
  }

  /** Closes the connection and cancels any retry. Waits for a stdio child to exit. */
  async stop(): Promise<void> {
    this.#lifecycle.stop();
    this.#monitor?.stop();
    // An attempt still opening has a child (or a request) of its own, not yet the connection's.
    const attempt = this.#attempt.abort(new UpstreamUnavailableError(this.name, 'it was stopped'));
    // Over HTTP nothing outlives it; a child is waited for (an auth server's wait is bounded by the connect timeout).
    if (this.config.transport === 'stdio') await attempt;
    await this.#disconnect(true);
    this.#auth?.close();
  }

  status(): UpstreamStatus {
    const session = this.#session.status();
    return {
      name: this.name,
      state: this.health,
      transport: this.config.transport,
      wire: session.wire,
      description: this.config.description,
      tags: this.config.tags,
      toolCount: this.tools.length,
      lastError: this.lastError,
      connectedAt: this.#lifecycle.connectedAt?.toISOString(),
      nextRetryAt: this.#lifecycle.nextRetryAt?.toISOString(),
      pid: session.pid,
      breaker: this.#breaker.state,
      protocol: session.protocol,
    };
  }

  /**
   * The level the sessions of this upstream should log at, from now and after each reconnect:
   * what a `logging/setLevel` sent through `request` records, or (a server with `urls`) what
   * one sent to the others while this replica was down.
   */
  rememberLogLevel(level: LoggingLevel): void {
    this.#carryOver.rememberLogLevel(level);
  }

  /**
   * Sends a request to this upstream and returns its result unvalidated. Upstream JSON-RPC
   * errors are rethrown as they came (`ProtocolError`); timeouts and lost connections become
   * typed upstream errors (`request-forwarding.ts`). A 2026-07-28 upstream's `input_required`
   * answer is returned as it came (see `isInputRequired`), and the `inputResponses` and
   * `requestState` of a retry are passed on untouched. Reserved `_meta` keys belong to one hop
   * and cross in neither direction (`request-envelope.ts`).
   */
  async request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions = {}, owner?: unknown): Promise<PassThroughResult> {
    const end = this.#inFlight.begin();
    try {
      return await this.#request(method, params, options, owner);
    } finally {
      end();
    }
  }

  async #request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<PassThroughResult> {
    // The downstream request's params were checked against the SDK's schema: `level` is one.
    if (method === 'logging/setLevel' && typeof params?.level === 'string') this.rememberLogLevel(params.level as LoggingLevel);
    // The client let go of the resource even when the upstream never hears of it (down, its
    // breaker open): no later 2025 session is subscribed to it again, and no later 2026-07-28
    // change stream has it in its filter.
    if (method === 'resources/unsubscribe') this.#carryOver.unsubscribing(params?.uri);
    const held = this.#session.forRequests();
    if (this.state !== 'ready' || !held) {
      // The typed reason (a user's missing authorisation carries its URL) says more than "down".
      throw this.#failure.authFailure ?? new UpstreamUnavailableError(this.name, this.lastError ?? this.state);
    }
    const session = { ...held, server: this.name, tools: this.#lists.tools, timeoutMs: this.timeoutMs, ended: () => this.#sessionEnded(held.client) };
    return this.#forwarder.forward(session, method, params, options, owner);
  }

  /** The upstream no longer knows our session (it restarted): a new one is started. */
  #sessionEnded(client: Client): void {
    if (!this.#session.holds(client)) return;
    this.#lost(this.#lifecycle.generation, 'the upstream ended our session');
    void bestEffort(() => client.close(), this.#logger, 'close the client of an ended upstream session');
  }

  #beginConnect(): void {
    this.#attempt.begin((signal) => this.#connect(signal));
  }

  async #connect(signal: AbortSignal): Promise<void> {
    const generation = this.#lifecycle.begin();
    let prior: PriorDiscovery | undefined;
    try {
      prior = await this.#era.recall();
      const opened = await openSession({
        server: this.name,
        era: this.#era,
        superseded: () => !this.#lifecycle.current(generation),
        config: this.config,
        logger: this.#logger,
        groups: this.#deps.groups,
        newClient: () => this.#newClient(),
        owners: this.#owners,
        timeoutMs: this.connectTimeoutMs,
        prior,
        onStaleVerdict: () => void this.#era.forget(),
        auth: this.#auth,
        redact: this.#redact,
        signal,
      });
      if (!opened) return;
      this.#session.take(opened, () => this.#lost(generation));
      // Listening first: a change made while the lists are fetched is not missed. Changes made
      // while no stream was open were not heard of: a reopened stream refreshes the lists (those
      // still within their ttlMs come from the client's cache).
      if (opened.protocol.era === 'modern') await this.#changes.open(opened.client, this.connectTimeoutMs, () => void this.#refresh(opened.client, EVERY_LIST));
      await this.#fetchLists(opened.client, EVERY_LIST);
      if (!this.#lifecycle.current(generation)) return;
      this.#failure.connected();
      // Reconnected: whatever opened the breaker is over.
      this.#breaker.reset();
      this.#session.ready();
      this.#startMonitor(opened.client, generation);
      this.#logger.info({ wire: opened.wire, protocol: opened.protocol.version, tools: this.#lists.tools.length }, 'upstream ready');
      this.#lifecycle.ready();
      this.#carryOver.restore(opened, () => this.#lifecycle.current(generation), this.timeoutMs);
    } catch (error) {
      if (!this.#lifecycle.current(generation)) return;
      await this.#connectFailed(error, prior);
    }
  }

  async #connectFailed(error: unknown, prior: PriorDiscovery | undefined): Promise<void> {
    // Superseded first: closing its client below must not report a second loss (which would
    // overwrite this error with "connection closed" and schedule a second retry).
    const failed = this.#lifecycle.failed();
    this.#failure.connectFailed(error);
    this.#logger.warn({ err: this.lastError }, 'upstream connection failed');
    // A remembered 2026 verdict is checked by nothing at connect (no round trip): when the
    // connection it opened did not work, the next attempt finds out afresh.
    if (prior?.kind === 'modern') void this.#era.forget();
    await this.#disconnect(false);
    if (!this.#lifecycle.current(failed)) return;
    // Retrying cannot help: wait for a config change or an admin restart.
    if (classifyConnectFailure(error) === 'misconfigured') this.#lifecycle.misconfigured();
    else this.#scheduleRetry(failed);
  }

  #startMonitor(client: Client, generation: number): void {
    this.#monitor?.stop();
    this.#monitor = watchSession(client, this.#deps.health, this.#breaker, {
      onChange: () => this.#deps.onChange(this),
      onDead: (reason) => {
        if (!this.#lifecycle.current(generation)) return;
        // Lost first (it supersedes this connection), so closing the client cannot replace the reason.
        this.#lost(generation, reason);
        void bestEffort(() => client.close(), this.#logger, 'close the client of an unresponsive upstream');
      },
      logger: this.#logger,
    });
  }

  #newClient(): Client {
    const { events } = this.#deps;
    const stdio = this.config.transport === 'stdio';
    return createUpstreamClient(stdio ? { stdioProbeTimeoutMs: Math.min(this.connectTimeoutMs, STDIO_PROBE_TIMEOUT_MS) } : {}, {
      onListChanged: (client, which) => void this.#refresh(client, which),
      onLogMessage: (params) => events.onLogMessage(this.name, params, this.#owners.delivering),
      onResourceUpdated: (uri) => events.onResourceUpdated(this.name, uri),
      onServerRequest: (request, signal) => events.onServerRequest(this.name, request, signal, this.#owners.delivering, this.config.roots ?? []),
      onError: (error) => this.#garbled.noteError(error),
    });
  }

  /** Fetches the asked-for lists the upstream's capabilities offer, applied while `client` is still this connection's. */
  #fetchLists(client: Client, which: ListSelection): Promise<void> {
    return this.#lists.fetch(client, this.#session.capabilities, which, this.connectTimeoutMs, () => this.#session.holds(client));
  }

  /** Fetches lists again after a change; also while (re)connecting, so a change made during the first fetch is not lost. */
  async #refresh(client: Client, which: ListSelection): Promise<void> {
    if (!this.#session.holds(client)) return;
    try {
      await this.#fetchLists(client, which);
      if (this.#session.holds(client)) this.#deps.onChange(this);
    } catch (error) {
      this.#logger.warn({ err: describeError(error) }, 'could not refresh the upstream lists');
    }
  }

  #lost(generation: number, because?: string): void {
    const retrying = this.#lifecycle.lost(generation);
    if (retrying === undefined) return;
    this.#monitor?.stop();
    this.#changes.close();
    this.#failure.setLastError(because ?? this.#session.exitReason() ?? 'connection closed');
    this.#session.release();
    this.#logger.warn({ reason: this.lastError }, 'upstream connection lost');
    this.#scheduleRetry(retrying);
  }

  /**
   * Tools stay listed while an upstream is down: a restart does not make them flicker in and
   * out of every client's list, and a call in the meantime gets an error naming the cause.
   */
  #scheduleRetry(generation: number): void {
    if (this.#lifecycle.retry(generation, () => this.#beginConnect()) !== 'gave-up') return;
    const attempts = this.#lifecycle.failures;
    this.#failure.setLastError(`${this.lastError ?? 'failed'} (gave up after ${attempts} attempts; restart it or change its config)`);
    this.#logger.error({ attempts }, 'upstream keeps failing; no more retries');
    this.#deps.onChange(this);
  }

  async #disconnect(polite: boolean): Promise<void> {
    const held = this.#session.release();
    this.#changes.close();
    if (held) await closeSession(held.client, held.transport, polite, this.#logger);
  }
}

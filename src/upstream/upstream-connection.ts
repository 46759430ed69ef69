import {
  CLIENT_CAPABILITIES_META_KEY,
  Client,
  LOG_LEVEL_META_KEY,
  ProtocolError,
  ProtocolErrorCode,
  SdkError,
  SdkErrorCode,
  type LoggingLevel,
  type LoggingMessageNotificationParams,
  type Progress,
  type PriorDiscovery,
  type Prompt,
  type Resource,
  type ResourceTemplateType,
  type ServerCapabilities,
  type Tool,
  type Transport,
  type ClientCapabilities,
} from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { isReplicated, type ServerConfig } from '../config/schema.js';
import type { ChildProcessGroups } from './child-processes.js';
import { UpstreamAuthError, type UpstreamAuth } from './auth/upstream-auth.js';
import { RecentCredentials, observedAuth } from './auth/observed-auth.js';
import { NotJsonRpcError, UpstreamBadResponseError, UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { openClient } from './open-transport.js';
import { backoffDelay, failuresAfterLoss } from './backoff.js';
import { authFailureIn, classifyConnectFailure, classifyRequestFailure, describeError, describeRefusal } from './failure-classification.js';
import { HealthMonitor } from './health-monitor.js';
import { InFlightRequests } from './in-flight.js';
import { LatestWins } from './latest-wins.js';
import { authSecrets, textRedactor } from '../observability/redact.js';
import { OwnerChannel } from './owner-channel.js';
import { bestEffort } from '../observability/best-effort.js';
import { EraMemory, InMemoryEraVerdicts, type EraVerdictStore } from './era-verdicts.js';
import { STDIO_PROBE_TIMEOUT_MS, type NegotiatedProtocol } from './era-negotiation.js';
import { CLIENT_CAPABILITIES, createUpstreamClient } from './upstream-client.js';
import { newProcessKey, taskIdForProcess, taskIdFromProcess } from './minted-values.js';
import { carryTaskHandles, declaringTasks, withTaskHandle } from './task-results.js';
import { withoutHopMeta } from './hop-meta.js';
import { offersMethod } from './offered-methods.js';
import { paramHeaders } from './param-headers.js';
import { ListSubscription, listenFilter } from './list-subscription.js';

export { isInputRequired } from './input-required.js';

export type UpstreamState = 'connecting' | 'ready' | 'degraded' | 'down' | 'misconfigured' | 'disabled';

export interface ReconnectPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** Failed attempts in a row before giving up (0 = never). */
  maxAttempts: number;
}

export interface HealthPolicy {
  breaker: { failureThreshold: number; cooldownMs: number };
  /** 0 disables pings. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  pingFailureThreshold: number;
}

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

/** Conflux's own request options (no SDK type crosses this boundary). */
export interface UpstreamRequestOptions {
  signal?: AbortSignal | undefined;
  /** Milliseconds; the server's configured timeout when not given. */
  timeout?: number | undefined;
  /** Progress the upstream reports about this request. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** Whether a progress report restarts the timeout. */
  resetTimeoutOnProgress?: boolean | undefined;
  /** The caller declared the Tasks extension: a 2026-07-28 upstream is told so, and may answer with a task handle. */
  tasks?: boolean | undefined;
  /**
   * What the client this request is made for declared it can be asked: a 2026-07-28 upstream
   * reads it in the request's envelope (those the gateway can relay), and asks only for that.
   * Without it the envelope names what the gateway itself answers.
   */
  clientCapabilities?: ClientCapabilities | undefined;
  /**
   * The least severe log message the client wants about this request: a 2026-07-28 upstream logs
   * about a request only at the level the request names (none when it names none).
   */
  logLevel?: LoggingLevel | undefined;
}

/** A public, serialisable view of one upstream. */
export interface UpstreamStatus {
  name: string;
  state: UpstreamState;
  transport: ServerConfig['transport'];
  wire: 'stdio' | 'streamable-http' | 'sse' | undefined;
  description: string | undefined;
  tags: string[];
  toolCount: number;
  lastError: string | undefined;
  connectedAt: string | undefined;
  nextRetryAt: string | undefined;
  pid: number | undefined;
  breaker: BreakerState;
  /** The protocol era and version of the last connection (2026-07-28 is `modern`); undefined before the first. */
  protocol: NegotiatedProtocol | undefined;
}

/**
 * Results are relayed to the client unchanged, so they are not re-validated field by field
 * here: the SDK only needs to know the result is an object.
 */
const PassThroughResult = z.object({}).loose();
type PassThroughResult = z.infer<typeof PassThroughResult>;

/**
 * One upstream MCP server: its SDK client, its state, its tools, and its reconnects.
 * A connection attempt that fails, or a connection that drops, is retried with
 * exponential backoff and jitter until `stop()`.
 */
export class UpstreamConnection {
  #state: UpstreamState = 'connecting';
  #tools: readonly Tool[] = [];
  #prompts: readonly Prompt[] = [];
  #resources: readonly Resource[] = [];
  #resourceTemplates: readonly ResourceTemplateType[] = [];
  #capabilities: ServerCapabilities | undefined;
  #instructions: string | undefined;
  /** One sequence per list: only the newest request's answer is applied (see `LatestWins`). */
  readonly #listSync = { tools: new LatestWins(), prompts: new LatestWins(), resources: new LatestWins(), templates: new LatestWins() };

  readonly #deps: UpstreamDeps;
  readonly #now: () => number;
  /** Hides this server's env and header values, the credentials it was sent, and token-shaped text (see `observability/redact.ts`). */
  readonly #redact: (text: string) => string;
  /** The connection's auth, watched so that what it sends is known to `#redact`. */
  readonly #auth: UpstreamAuth | undefined;
  /** Why the last connection attempt could not authenticate (a request while not ready is told this, not just "down"). */
  #authFailure: UpstreamAuthError | undefined;
  #lastError: string | undefined;
  readonly #logger: Logger;
  #client: Client | undefined;
  #transport: Transport | undefined;
  #wire: UpstreamStatus['wire'];
  /** A stdio connection's current child process (`minted-values.ts`): new with each one spawned. */
  #processKey: string | undefined;
  /**
   * The level the gateway last asked a 2025 session of this upstream to log at: a new session
   * (after a reconnect) starts at the server's own default, so it is asked again.
   */
  #logLevel: LoggingLevel | undefined;
  #connectedAt: Date | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #nextRetryAt: Date | undefined;
  #failures = 0;
  #everConnected = false;
  #monitor: HealthMonitor | undefined;
  /** The `subscriptions/listen` stream of a 2026-07-28 connection (list changes and resource updates arrive only there). */
  #listStream: ListSubscription | undefined;
  /**
   * Resources subscribed to, kept across reconnects. On a 2026-07-28 upstream, which has no
   * `resources/subscribe`, they are part of its stream's filter; a 2025 one is asked again for
   * each when a new session opens (its old one's subscriptions ended with it).
   */
  readonly #resourceSubscriptions = new Set<string>();
  #protocol: NegotiatedProtocol | undefined;
  /** This server's remembered protocol era. */
  readonly #era: EraMemory;
  /** The last output that was not JSON-RPC, and how many there were: a request can tell whether its answer was one. */
  #notJsonRpc: NotJsonRpcError | undefined;
  #notJsonRpcCount = 0;
  readonly #breaker: CircuitBreaker;
  /**
   * Who a request is for, carried through the SDK client into the transport (which sends the
   * request) and back out with the messages that arrive on that request's own response stream.
   */
  readonly #owners = new OwnerChannel();
  /** Bumped by every (re)connect and by stop(); callbacks from an older generation are ignored. */
  #generation = 0;
  /** The connection attempt under way, and how to give it up: `stop()` waits for its child to be gone. */
  #attempt: { done: Promise<void>; abort: AbortController } | undefined;
  #stopped = false;
  #config: ServerConfig;
  readonly #inFlight = new InFlightRequests();

  constructor(
    readonly name: string,
    config: ServerConfig,
    deps: UpstreamDeps,
  ) {
    this.#config = config;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#logger = deps.logger.child({ server: name });
    this.#breaker = new CircuitBreaker({ ...deps.health.breaker, now: this.#now });
    this.#era = new EraMemory(deps.verdicts ?? new InMemoryEraVerdicts(), deps.eraKey ?? name, this.#logger, this.#now);
    const sent = new RecentCredentials();
    this.#auth = deps.auth ? observedAuth(deps.auth, sent) : undefined;
    const written = config.transport === 'stdio' ? [] : authSecrets(config.auth);
    this.#redact = textRedactor(config.transport === 'stdio' ? { env: config.env, args: config.args } : { headers: config.headers, url: isReplicated(config) ? undefined : config.url }, () => [...written, ...sent.values()]);
    if (!config.enabled) this.#state = 'disabled';
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
    return this.#state;
  }

  /** The last lists the upstream reported (kept while it is down). */
  get tools(): readonly Tool[] {
    return this.#tools;
  }

  get prompts(): readonly Prompt[] {
    return this.#prompts;
  }

  get resources(): readonly Resource[] {
    return this.#resources;
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#resourceTemplates;
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#capabilities;
  }

  /**
   * What the server's initialize result told its clients about using it; set while it is
   * ready, cleared when the connection ends (a reconnect reads it afresh).
   */
  get instructions(): string | undefined {
    return this.#instructions;
  }

  /** Why the last connection attempt could not authenticate (the error, with its URL to authorise at), if that was why. */
  get authFailure(): UpstreamAuthError | undefined {
    return this.#authFailure;
  }

  /**
   * Why the upstream last failed. It often quotes the upstream (a child's stderr tail, an
   * HTTP error body), which may print secrets, and it reaches `/servers` and tool errors: it
   * is stored redacted, so no reader can show it raw.
   */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  #setLastError(text: string | undefined): void {
    this.#lastError = text === undefined ? undefined : this.#redact(text);
  }

  /**
   * `error` with its message redacted like `lastError`: it reaches tool errors and the REST API
   * as it is. Redacted in place, so that what else it is (an `AuthorizationRequiredError` with
   * its URL and callback) stays.
   */
  #redactedAuth(error: UpstreamAuthError): UpstreamAuthError {
    const message = this.#redact(error.message);
    if (message !== error.message) error.message = message;
    return error;
  }

  /** The state to report: a connected server whose breaker is not closed or whose pings fail is `degraded`. */
  get health(): UpstreamState {
    if (this.#state === 'ready' && (this.#breaker.state !== 'closed' || (this.#monitor?.failures ?? 0) > 0)) return 'degraded';
    return this.#state;
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
    return this.#state === 'ready' && this.#client !== undefined && this.#breaker.allowing;
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
    if (this.#state === 'disabled' || this.#stopped) return;
    this.#beginConnect();
  }

  /** Closes the connection and cancels any retry. Waits for a stdio child to exit. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopMonitor();
    this.#connectedAt = undefined;
    // An attempt still opening has a child (or a request) of its own, not yet the connection's.
    const attempt = this.#attempt;
    attempt?.abort.abort(new UpstreamUnavailableError(this.name, 'it was stopped'));
    // Over HTTP nothing outlives it; a child is waited for (an auth server's wait is bounded by the connect timeout).
    if (this.config.transport === 'stdio') await attempt?.done;
    await this.#disconnect(true);
    this.#auth?.close();
  }

  status(): UpstreamStatus {
    return {
      name: this.name,
      state: this.health,
      transport: this.config.transport,
      wire: this.#wire,
      description: this.config.description,
      tags: this.config.tags,
      toolCount: this.tools.length,
      lastError: this.lastError,
      connectedAt: this.#connectedAt?.toISOString(),
      nextRetryAt: this.#nextRetryAt?.toISOString(),
      pid: (this.#transport as { pid?: number } | undefined)?.pid,
      breaker: this.#breaker.state,
      protocol: this.#protocol,
    };
  }

  /**
   * The level the sessions of this upstream should log at, from now and after each reconnect:
   * what a `logging/setLevel` sent through `request` records, or (a server with `urls`) what
   * one sent to the others while this replica was down.
   */
  rememberLogLevel(level: LoggingLevel): void {
    this.#logLevel = level;
  }

  /** Keeps what a 2025 upstream answered to `resources/subscribe` and `resources/unsubscribe`, for its next session. */
  #subscribed(method: string, uri: unknown): void {
    if (typeof uri !== 'string' || this.#deps.resubscribes === false) return;
    if (method === 'resources/subscribe') this.#resourceSubscriptions.add(uri);
    else if (method === 'resources/unsubscribe') this.#resourceSubscriptions.delete(uri);
  }

  /** A new 2025 session is subscribed to the resources its predecessor was, so that updates go on. */
  #restoreSubscriptions(opened: { client: Client; protocol: NegotiatedProtocol }, generation: number): void {
    if (opened.protocol.era === 'modern' || this.#resourceSubscriptions.size === 0) return;
    for (const uri of this.#resourceSubscriptions) {
      void bestEffort(
        async () => {
          if (generation === this.#generation) await opened.client.subscribeResource({ uri }, { timeout: this.timeoutMs });
        },
        this.#logger,
        `subscribe the new upstream session to ${uri} again`,
      );
    }
  }

  /** A new 2025 session that logs is asked for the level its predecessor was set to. */
  #restoreLogLevel(opened: { client: Client; protocol: NegotiatedProtocol }, generation: number): void {
    const level = this.#logLevel;
    if (level === undefined || opened.protocol.era === 'modern' || !opened.client.getServerCapabilities()?.logging) return;
    void bestEffort(
      async () => {
        if (generation === this.#generation) await opened.client.setLoggingLevel(level, { timeout: this.timeoutMs });
      },
      this.#logger,
      `set the log level of the new upstream session to ${level}`,
    );
  }

  /**
   * Sends a request to this upstream and returns its result unvalidated. Upstream JSON-RPC
   * errors are rethrown as they came (`ProtocolError`); timeouts and lost connections become
   * typed upstream errors. A 2026-07-28 upstream's `input_required` answer is returned as it
   * came (see `isInputRequired`), and the `inputResponses` and `requestState` of a retry are
   * passed on untouched. Reserved `_meta` keys belong to one hop and cross in neither direction.
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
    const client = this.#client;
    if (this.#state !== 'ready' || !client) {
      // The typed reason (a user's missing authorisation carries its URL) says more than "down".
      if (this.#authFailure) throw this.#authFailure;
      throw new UpstreamUnavailableError(this.name, this.lastError ?? this.#state);
    }
    if (this.#protocol?.era === 'modern' && this.#capabilities && !offersMethod(this.#capabilities, method)) {
      // A 2026-07-28 server serves what it declares, and would refuse the rest itself (with an
      // HTTP 404 for an unknown method). A 2025 one may serve more than it declares
      // (`completion/complete` predates the `completions` capability), so it is asked.
      throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `"${this.name}" does not offer ${method}`);
    }
    const timeout = options.timeout ?? this.timeoutMs;
    const notJsonRpcBefore = this.#notJsonRpcCount;
    const modern = this.#protocol?.era === 'modern';
    // A task lives in the process that created it: a request naming another's is not sent.
    const processKey = this.#processKey;
    const forwarded = withoutHopMeta(processKey ? taskIdForProcess(this.name, processKey, method, params) : params);
    const capabilities = options.clientCapabilities ? relayableCapabilities(options.clientCapabilities) : CLIENT_CAPABILITIES;
    const sent = !modern ? forwarded : options.tasks ? declaringTasks(forwarded, capabilities) : options.clientCapabilities ? withCapabilities(forwarded, capabilities) : forwarded;
    // The client's own level was taken out with the hop's envelope: the caller's goes in its place.
    const logged = modern && options.logLevel ? withLogLevel(sent, options.logLevel) : sent;
    // Before the breaker: a value too long for a header is refused without taking a probe's place.
    const headers = modern && method === 'tools/call' ? this.#paramHeadersFor(logged) : undefined;
    if (!this.#breaker.allow()) {
      throw new UpstreamUnavailableError(this.name, `circuit breaker open after repeated failures; next try in ${this.#breaker.retryAfterSeconds}s`);
    }
    if (this.#protocol?.era === 'modern' && (method === 'resources/subscribe' || method === 'resources/unsubscribe')) {
      // The stream's own reopening tells nothing of the upstream's health: whatever `allow()` took (a probe) is given back.
      try {
        return await this.#changeSubscription(method, params?.uri);
      } finally {
        this.#breaker.release();
      }
    }
    try {
      const send = () =>
        client.request({ method, ...(logged ? { params: logged } : {}) }, PassThroughResult, {
          ...requestOptions(options),
          timeout,
          allowInputRequired: true,
          ...(headers ? { headers } : {}),
        });
      const result = await this.#owners.offer(owner, send);
      this.#breaker.success();
      if (!modern) this.#subscribed(method, params?.uri);
      const answered = withoutHopMeta(modern ? withTaskHandle(result) : result);
      return processKey ? taskIdFromProcess(processKey, method, answered) : answered;
    } catch (error) {
      const authFailure = authFailureIn(error);
      if (authFailure) {
        // The gateway could not authenticate this request: no fault of the upstream's, unless
        // its authorization server failed; the caller reads why (and a URL, when a user must act).
        if (authFailure.kind === 'failed') this.#breaker.failure('unreachable');
        else this.#breaker.release();
        throw this.#redactedAuth(authFailure);
      }
      if (isEraMismatch(error)) {
        // Nothing was sent: the method does not exist in the protocol revision this upstream speaks.
        throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `${method} is not available on "${this.name}" (it speaks MCP ${this.#protocol?.version ?? 'of another revision'})`);
      }
      const failure = classifyRequestFailure(error, options.signal?.aborted === true);
      // Output that was not JSON-RPC while this request waited was most likely its answer, but
      // nothing ties it to this request (another caller's call may have caused it): the client
      // is told what it was, the operator's log has what it said.
      const garbled = this.#notJsonRpcCount !== notJsonRpcBefore ? this.#notJsonRpc : undefined;
      switch (failure) {
        case 'cancelled':
          this.#breaker.release();
          // The SDK wraps the caller's reason; the caller gets back the one it gave.
          throw options.signal?.reason ?? error;
        case 'answer':
          this.#breaker.success();
          throw error;
        case 'refused':
          // The upstream is alive and refused this request alone (too large, malformed): the
          // caller's failure, told as the caller's bad request, not a fault of the upstream.
          this.#breaker.success();
          throw new ProtocolError(ProtocolErrorCode.InvalidRequest, `upstream "${this.name}" refused ${method}: ${describeRefusal(error)}`);
        case 'timeout':
          this.#breaker.failure('fault');
          if (garbled) throw new UpstreamBadResponseError(this.name, method, `${garbled.summary} (and no answer within ${timeout / 1000}s)`);
          throw new UpstreamTimeoutError(this.name, method, timeout);
        case 'closed':
          this.#breaker.failure('unreachable');
          if (garbled) throw new UpstreamBadResponseError(this.name, method, `${garbled.summary} (then: ${this.lastError ?? 'connection closed'})`);
          throw new UpstreamConnectionLostError(this.name, method, this.lastError ?? 'connection closed');
        case 'bad-response':
          this.#breaker.failure('fault');
          throw new UpstreamBadResponseError(this.name, method, this.#redact(describeError(error)));
        case 'session-ended':
          this.#breaker.failure('unreachable');
          if (client === this.#client) {
            // The upstream no longer knows our session (it restarted): start a new one.
            this.#lost(this.#generation, 'the upstream ended our session');
            void bestEffort(() => client.close(), this.#logger, 'close the client of an ended upstream session');
          }
          throw new UpstreamConnectionLostError(this.name, method, this.#redact(describeError(error)));
        case 'unreachable':
          this.#breaker.failure('unreachable');
          throw new UpstreamConnectionLostError(this.name, method, this.#redact(describeError(error)));
      }
    }
  }

  #beginConnect(): void {
    const abort = new AbortController();
    const attempt = { abort, done: this.#connect(abort.signal) };
    this.#attempt = attempt;
    const settled = () => {
      if (this.#attempt === attempt) this.#attempt = undefined;
    };
    attempt.done.then(settled, settled);
  }

  async #connect(signal: AbortSignal): Promise<void> {
    const generation = ++this.#generation;
    if (this.#everConnected || this.#failures > 0) this.#deps.onRestart?.(this.name);
    // A retry leaves the state at `down` until it succeeds: from outside, the server is still down.
    if (this.#state !== 'down') this.#setState('connecting');
    let prior: PriorDiscovery | undefined;
    try {
      prior = await this.#era.recall();
      if (this.#auth) {
        // An authorization server that never answers must not hold the connection beyond its connect timeout.
        await withDeadline(this.#auth.ready(), this.connectTimeoutMs, () => new UpstreamAuthError('failed', this.name, `no credentials within ${this.connectTimeoutMs / 1000}s`));
        // Stopped (or superseded) while the credentials were being got: nothing more is sent.
        if (generation !== this.#generation) return;
      }
      const opened = await openClient({
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
      if (generation !== this.#generation) {
        await bestEffort(() => opened.client.close(), this.#logger, 'close a superseded connection');
        return;
      }
      if (opened.learned) void this.#era.remember(opened.verdict);
      this.#client = opened.client;
      this.#transport = opened.transport;
      this.#wire = opened.wire;
      this.#processKey = opened.wire === 'stdio' ? newProcessKey() : undefined;
      this.#protocol = opened.protocol;
      this.#capabilities = opened.client.getServerCapabilities();
      opened.client.onclose = () => this.#lost(generation);
      if (opened.protocol.era === 'modern') carryTaskHandles(opened.transport);
      // Listening first: a change made while the lists are fetched is not missed.
      if (opened.protocol.era === 'modern') await this.#listenForChanges(opened.client);
      await this.#fetchLists(opened.client, { tools: true, prompts: true, resources: true });
      if (generation !== this.#generation) return;
      this.#nextRetryAt = undefined;
      this.#setLastError(undefined);
      this.#authFailure = undefined;
      this.#everConnected = true;
      this.#connectedAt = new Date(this.#now());
      // Reconnected: whatever opened the breaker is over.
      this.#breaker.reset();
      // Set just before `ready` (no await between), so a server that is not ready has none.
      this.#instructions = opened.client.getInstructions();
      this.#startMonitor(opened.client, generation);
      this.#logger.info({ wire: opened.wire, protocol: opened.protocol.version, tools: this.#tools.length }, 'upstream ready');
      this.#setState('ready');
      this.#restoreLogLevel(opened, generation);
      this.#restoreSubscriptions(opened, generation);
    } catch (error) {
      if (generation !== this.#generation) return;
      // Supersede this attempt first: closing its client below must not report a second loss
      // (which would overwrite this error with "connection closed" and schedule a second retry).
      const failed = ++this.#generation;
      this.#setLastError(describeError(error));
      const authFailure = authFailureIn(error);
      this.#authFailure = authFailure && this.#redactedAuth(authFailure);
      this.#logger.warn({ err: this.lastError }, 'upstream connection failed');
      // A remembered 2026 verdict is checked by nothing at connect (no round trip): when the
      // connection it opened did not work, the next attempt finds out afresh.
      if (prior?.kind === 'modern') void this.#era.forget();
      await this.#disconnect(false);
      if (failed !== this.#generation) return;
      if (classifyConnectFailure(error) === 'misconfigured') {
        // Retrying cannot help: wait for a config change or an admin restart.
        this.#setState('misconfigured');
        return;
      }
      this.#scheduleRetry(failed);
    }
  }

  /** The `Mcp-Param-*` headers a `tools/call` needs, from the tool's input schema as this upstream lists it. */
  #paramHeadersFor(params: Record<string, unknown> | undefined): Record<string, string> | undefined {
    const tool = this.#tools.find((t) => t.name === params?.name);
    const headers = tool ? paramHeaders(tool.inputSchema, params?.arguments as Record<string, unknown> | undefined) : {};
    return Object.keys(headers).length > 0 ? headers : undefined;
  }

  /**
   * `resources/subscribe` and `resources/unsubscribe` on a 2026-07-28 upstream: the URI joins or
   * leaves the change stream's filter, and the stream is replaced by one with the new filter.
   */
  async #changeSubscription(method: 'resources/subscribe' | 'resources/unsubscribe', uri: unknown): Promise<PassThroughResult> {
    if (typeof uri !== 'string') throw new ProtocolError(ProtocolErrorCode.InvalidParams, `${method} needs a uri`);
    if (!this.#capabilities?.resources?.subscribe) throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `"${this.name}" offers no resource subscriptions`);
    const subscribing = method === 'resources/subscribe';
    if (subscribing === this.#resourceSubscriptions.has(uri)) return {};
    if (subscribing) this.#resourceSubscriptions.add(uri);
    else this.#resourceSubscriptions.delete(uri);
    try {
      await this.#listStream?.refilter();
      return {};
    } catch (error) {
      if (subscribing) this.#resourceSubscriptions.delete(uri);
      else this.#resourceSubscriptions.add(uri);
      if (error instanceof ProtocolError) throw error;
      throw new UpstreamConnectionLostError(this.name, method, this.#redact(describeError(error)));
    }
  }

  /**
   * Opens the `subscriptions/listen` stream of a 2026-07-28 connection for the lists its server
   * says change and the resources subscribed to (none open until there is something to hear).
   */
  async #listenForChanges(client: Client): Promise<void> {
    const stream = new ListSubscription({
      client,
      filter: () => listenFilter(client.getServerCapabilities(), this.#resourceSubscriptions),
      backoff: this.#deps.reconnect,
      timeoutMs: this.connectTimeoutMs,
      // Changes made while no stream was open were not heard of; lists still within their ttlMs come from the client's cache.
      onReopened: () => void this.#refresh(client, { tools: true, prompts: true, resources: true }),
      logger: this.#logger,
    });
    this.#listStream = stream;
    await stream.start();
  }

  #stopListening(): void {
    const stream = this.#listStream;
    this.#listStream = undefined;
    if (stream) void bestEffort(() => stream.stop(), this.#logger, 'close the upstream list-change stream');
  }

  #startMonitor(client: Client, generation: number): void {
    this.#stopMonitor();
    const { pingIntervalMs, pingTimeoutMs, pingFailureThreshold } = this.#deps.health;
    // 2026-07-28 has no ping; `server/discover` is the cheapest request every such server answers.
    const modern = client.getProtocolEra() === 'modern';
    this.#monitor = new HealthMonitor({
      intervalMs: pingIntervalMs,
      timeoutMs: pingTimeoutMs,
      failureThreshold: pingFailureThreshold,
      ping: (timeout) => (modern ? client.discover({ timeout }) : client.ping({ timeout })),
      breaker: this.#breaker,
      onChange: () => this.#deps.onChange(this),
      onPingFailed: (failures, error) => this.#logger.warn({ failures, err: describeError(error) }, 'upstream ping failed'),
      onDead: (reason) => {
        if (generation !== this.#generation) return;
        // Lost first (it supersedes this connection), so closing the client cannot replace the reason.
        this.#lost(generation, reason);
        void bestEffort(() => client.close(), this.#logger, 'close the client of an unresponsive upstream');
      },
    });
    this.#monitor.start();
  }

  #stopMonitor(): void {
    this.#monitor?.stop();
  }

  #newClient(): Client {
    const { events } = this.#deps;
    const stdio = this.config.transport === 'stdio';
    return createUpstreamClient(stdio ? { stdioProbeTimeoutMs: Math.min(this.connectTimeoutMs, STDIO_PROBE_TIMEOUT_MS) } : {}, {
      onListChanged: (client, which) => void this.#refresh(client, which),
      onLogMessage: (params) => events.onLogMessage(this.name, params, this.#owners.delivering),
      onResourceUpdated: (uri) => events.onResourceUpdated(this.name, uri),
      onServerRequest: (request, signal) => events.onServerRequest(this.name, request, signal, this.#owners.delivering, this.config.roots ?? []),
      onError: (error) => {
        if (error instanceof NotJsonRpcError) {
          this.#notJsonRpc = error;
          this.#notJsonRpcCount++;
          this.#logger.debug({ source: error.source, sample: this.#redact(error.sample) }, 'upstream sent something that is not JSON-RPC');
        } else {
          this.#logger.debug({ err: error.message }, 'upstream transport error');
        }
      },
    });
  }

  /**
   * Fetches the asked-for lists the upstream's capabilities offer. Each list applies only the
   * answer to its newest request: a slower, older answer arriving last is dropped. The SDK
   * client follows the pages, and serves a list again from its cache while the `ttlMs` a 2026
   * server gave it lasts (a `list_changed` drops it first).
   */
  async #fetchLists(client: Client, which: { tools?: boolean; prompts?: boolean; resources?: boolean }): Promise<void> {
    const caps = this.#capabilities;
    const options = { timeout: this.connectTimeoutMs };
    const current = () => client === this.#client;
    const sync = this.#listSync;
    await Promise.all([
      which.tools &&
        sync.tools.run(
          async () => (caps?.tools ? (await client.listTools(undefined, options)).tools : []),
          (tools) => current() && (this.#tools = tools),
        ),
      which.prompts &&
        sync.prompts.run(
          async () => (caps?.prompts ? (await client.listPrompts(undefined, options)).prompts : []),
          (prompts) => current() && (this.#prompts = prompts),
        ),
      which.resources &&
        sync.resources.run(
          async () => (caps?.resources ? (await client.listResources(undefined, options)).resources : []),
          (resources) => current() && (this.#resources = resources),
        ),
      which.resources &&
        sync.templates.run(
          async () => (caps?.resources ? (await client.listResourceTemplates(undefined, options).catch(() => ({ resourceTemplates: [] }))).resourceTemplates : []),
          (templates) => current() && (this.#resourceTemplates = templates),
        ),
    ]);
  }

  /** Fetches lists again after a change; also while (re)connecting, so a change made during the first fetch is not lost. */
  async #refresh(client: Client, which: { tools?: boolean; prompts?: boolean; resources?: boolean }): Promise<void> {
    if (client !== this.#client) return;
    try {
      await this.#fetchLists(client, which);
      if (client === this.#client) this.#deps.onChange(this);
    } catch (error) {
      this.#logger.warn({ err: describeError(error) }, 'could not refresh the upstream lists');
    }
  }

  #lost(generation: number, because?: string): void {
    if (generation !== this.#generation || this.#stopped) return;
    this.#generation++;
    this.#stopMonitor();
    this.#stopListening();
    this.#instructions = undefined;
    const reason = because ?? (this.#transport as { describeExit?: () => string | undefined } | undefined)?.describeExit?.();
    this.#setLastError(reason ?? 'connection closed');
    // Only the connection that was ready counts for the restart budget; cleared here so that a
    // later reconnect failing part-way does not find it, and uptime stops counting.
    this.#failures = failuresAfterLoss(this.#failures, this.#connectedAt?.getTime(), this.#now());
    this.#connectedAt = undefined;
    this.#logger.warn({ reason: this.lastError }, 'upstream connection lost');
    this.#client = undefined;
    this.#transport = undefined;
    this.#scheduleRetry(this.#generation);
  }

  /**
   * Tools stay listed while an upstream is down: a restart does not make them flicker in and
   * out of every client's list, and a call in the meantime gets an error naming the cause.
   */
  #scheduleRetry(generation: number): void {
    this.#setState('down');
    if (this.#stopped || generation !== this.#generation) return;
    const { initialDelayMs, maxDelayMs, maxAttempts } = this.#deps.reconnect;
    if (maxAttempts > 0 && this.#failures >= maxAttempts) {
      this.#setLastError(`${this.lastError ?? 'failed'} (gave up after ${this.#failures} attempts; restart it or change its config)`);
      this.#logger.error({ attempts: this.#failures }, 'upstream keeps failing; no more retries');
      this.#nextRetryAt = undefined;
      this.#deps.onChange(this);
      return;
    }
    const delay = backoffDelay(this.#failures, { initialDelayMs, maxDelayMs });
    this.#failures++;
    this.#nextRetryAt = new Date(this.#now() + delay);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#stopped && generation === this.#generation) this.#beginConnect();
    }, delay);
    this.#retryTimer.unref();
  }

  async #disconnect(polite: boolean): Promise<void> {
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    this.#instructions = undefined;
    this.#connectedAt = undefined;
    this.#stopListening();
    if (!client) return;
    if (polite && transport && 'terminateSession' in transport) {
      await bestEffort(() => withTimeout((transport as { terminateSession: () => Promise<void> }).terminateSession(), 1000), this.#logger, 'end the upstream session (HTTP DELETE)');
    }
    await bestEffort(() => client.close(), this.#logger, 'close the upstream client');
  }

  #setState(state: UpstreamState): void {
    if (this.#state === 'disabled') return;
    const changed = this.#state !== state;
    this.#state = state;
    if (changed || state === 'ready') this.#deps.onChange(this);
  }
}

/** The SDK's options for a request: the caller's, and nothing of them the SDK would read differently. */
function requestOptions(options: UpstreamRequestOptions): { signal?: AbortSignal; onprogress?: (progress: Progress) => void; resetTimeoutOnProgress?: boolean } {
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onprogress ? { onprogress: options.onprogress } : {}),
    ...(options.resetTimeoutOnProgress !== undefined ? { resetTimeoutOnProgress: options.resetTimeoutOnProgress } : {}),
  };
}

/**
 * Of what a client declared, what the gateway can relay to it: sampling, elicitation and
 * roots, as declared (less roots' `listChanged`: no `roots/list_changed` is relayed).
 */
function relayableCapabilities(declared: ClientCapabilities): ClientCapabilities {
  return {
    ...(declared.sampling ? { sampling: declared.sampling } : {}),
    ...(declared.elicitation ? { elicitation: declared.elicitation } : {}),
    ...(declared.roots ? { roots: {} } : {}),
  };
}

/** `params` whose envelope names `capabilities` (the SDK client lets `_meta` keys given with a request win over those it attaches). */
function withCapabilities(params: Record<string, unknown> | undefined, capabilities: ClientCapabilities): Record<string, unknown> {
  const meta = params?._meta as Record<string, unknown> | undefined;
  return { ...params, _meta: { ...meta, [CLIENT_CAPABILITIES_META_KEY]: capabilities } };
}

/** `params` whose envelope asks for log messages from `level` up. */
function withLogLevel(params: Record<string, unknown> | undefined, level: LoggingLevel): Record<string, unknown> {
  const meta = params?._meta as Record<string, unknown> | undefined;
  return { ...params, _meta: { ...meta, [LOG_LEVEL_META_KEY]: level } };
}

/** Sending a method the negotiated protocol revision does not have (the SDK refuses before sending). */
function isEraMismatch(error: unknown): boolean {
  return error instanceof SdkError && error.code === SdkErrorCode.MethodNotSupportedByProtocolVersion;
}

/** `work`, or the error `timeout` makes when it has not settled within `ms`. */
async function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(timeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]).finally(() => clearTimeout(timer));
}

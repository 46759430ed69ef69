import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type ClientCapabilities,
  type LoggingMessageNotification,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type ServerCapabilities,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ServerConfig } from '../config/schema.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import type { ChildProcessGroups } from './child-processes.js';
import { NotJsonRpcError, UpstreamBadResponseError, UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { openClient } from './open-transport.js';
import { backoffDelay, failuresAfterLoss } from './backoff.js';
import { classifyConnectFailure, classifyRequestFailure, describeError } from './failure-classification.js';
import { HealthMonitor } from './health-monitor.js';
import { LatestWins } from './latest-wins.js';
import { textRedactor } from '../observability/redact.js';
import { OwnerChannel } from './owner-channel.js';
import { bestEffort } from '../observability/best-effort.js';

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
  onLogMessage(server: string, params: LoggingMessageNotification['params'], owner: unknown): void;
  onResourceUpdated(server: string, uri: string): void;
}

/**
 * What the gateway tells upstreams it can do. Sampling and elicitation are honoured only for a
 * downstream client that declared them, while a call of that client is in flight; otherwise the
 * upstream gets an error. Roots are always answered: by the calling client, or with the server's
 * configured `roots`.
 */
const CLIENT_CAPABILITIES: ClientCapabilities = { sampling: {}, elicitation: { form: {}, url: {} }, roots: {} };

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
}

/**
 * Results are relayed to the client unchanged, so they are not re-validated field by field
 * here: the SDK only needs to know the result is an object.
 */
const PassThroughResult = z.object({}).loose();
type PassThroughResult = z.infer<typeof PassThroughResult>;

const MAX_LIST_PAGES = 100;

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
  #resourceTemplates: readonly ResourceTemplate[] = [];
  #capabilities: ServerCapabilities | undefined;
  #instructions: string | undefined;
  /** One sequence per list: only the newest request's answer is applied (see `LatestWins`). */
  readonly #listSync = { tools: new LatestWins(), prompts: new LatestWins(), resources: new LatestWins(), templates: new LatestWins() };

  readonly #deps: UpstreamDeps;
  readonly #now: () => number;
  /** Hides this server's env and header values and token-shaped text (see `observability/redact.ts`). */
  readonly #redact: (text: string) => string;
  #lastError: string | undefined;
  readonly #logger: Logger;
  #client: Client | undefined;
  #transport: Transport | undefined;
  #wire: UpstreamStatus['wire'];
  #connectedAt: Date | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #nextRetryAt: Date | undefined;
  #failures = 0;
  #everConnected = false;
  #monitor: HealthMonitor | undefined;
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
  #stopped = false;

  constructor(
    readonly name: string,
    readonly config: ServerConfig,
    deps: UpstreamDeps,
  ) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#logger = deps.logger.child({ server: name });
    this.#breaker = new CircuitBreaker({ ...deps.health.breaker, now: this.#now });
    this.#redact = textRedactor(config.transport === 'stdio' ? { env: config.env, args: config.args } : { headers: config.headers, url: config.url });
    if (!config.enabled) this.#state = 'disabled';
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

  get resourceTemplates(): readonly ResourceTemplate[] {
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

  /** The state to report: a connected server whose breaker is not closed or whose pings fail is `degraded`. */
  get health(): UpstreamState {
    if (this.#state === 'ready' && (this.#breaker.state !== 'closed' || (this.#monitor?.failures ?? 0) > 0)) return 'degraded';
    return this.#state;
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
    void this.#connect();
  }

  /** Closes the connection and cancels any retry. Waits for a stdio child to exit. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopMonitor();
    this.#connectedAt = undefined;
    await this.#disconnect(true);
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
    };
  }

  /**
   * Sends a request to this upstream and returns its result unvalidated. Upstream JSON-RPC
   * errors are rethrown as they came (`McpError`); timeouts and lost connections become
   * typed upstream errors.
   */
  async request(method: string, params: Record<string, unknown> | undefined, options: RequestOptions = {}, owner?: unknown): Promise<PassThroughResult> {
    const client = this.#client;
    if (this.#state !== 'ready' || !client) {
      throw new UpstreamUnavailableError(this.name, this.lastError ?? this.#state);
    }
    if (!this.#breaker.allow()) {
      throw new UpstreamUnavailableError(this.name, `circuit breaker open after repeated failures; next try in ${this.#breaker.retryAfterSeconds}s`);
    }
    const timeout = options.timeout ?? this.timeoutMs;
    const notJsonRpcBefore = this.#notJsonRpcCount;
    try {
      const send = () => client.request({ method, params } as never, PassThroughResult, { ...options, timeout });
      const result = await this.#owners.offer(owner, send);
      this.#breaker.success();
      return result;
    } catch (error) {
      const failure = classifyRequestFailure(error, options.signal?.aborted === true);
      // Output that was not JSON-RPC while this request waited was most likely its answer, but
      // nothing ties it to this request (another caller's call may have caused it): the client
      // is told what it was, the operator's log has what it said.
      const garbled = this.#notJsonRpcCount !== notJsonRpcBefore ? this.#notJsonRpc : undefined;
      switch (failure) {
        case 'cancelled':
          this.#breaker.release();
          throw error;
        case 'answer':
          this.#breaker.success();
          throw error;
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

  async #connect(): Promise<void> {
    const generation = ++this.#generation;
    if (this.#everConnected || this.#failures > 0) this.#deps.onRestart?.(this.name);
    // A retry leaves the state at `down` until it succeeds: from outside, the server is still down.
    if (this.#state !== 'down') this.#setState('connecting');
    try {
      const opened = await openClient({
        config: this.config,
        logger: this.#logger,
        groups: this.#deps.groups,
        newClient: () => this.#newClient(),
        owners: this.#owners,
        timeoutMs: this.connectTimeoutMs,
      });
      if (generation !== this.#generation) {
        await bestEffort(() => opened.client.close(), this.#logger, 'close a superseded connection');
        return;
      }
      this.#client = opened.client;
      this.#transport = opened.transport;
      this.#wire = opened.wire;
      this.#capabilities = opened.client.getServerCapabilities();
      opened.client.onclose = () => this.#lost(generation);
      await this.#fetchLists(opened.client, { tools: true, prompts: true, resources: true });
      if (generation !== this.#generation) return;
      this.#nextRetryAt = undefined;
      this.#setLastError(undefined);
      this.#everConnected = true;
      this.#connectedAt = new Date(this.#now());
      // Reconnected: whatever opened the breaker is over.
      this.#breaker.reset();
      // Set just before `ready` (no await between), so a server that is not ready has none.
      this.#instructions = opened.client.getInstructions();
      this.#startMonitor(opened.client, generation);
      this.#logger.info({ wire: opened.wire, tools: this.#tools.length }, 'upstream ready');
      this.#setState('ready');
    } catch (error) {
      if (generation !== this.#generation) return;
      // Supersede this attempt first: closing its client below must not report a second loss
      // (which would overwrite this error with "connection closed" and schedule a second retry).
      const failed = ++this.#generation;
      this.#setLastError(describeError(error));
      this.#logger.warn({ err: this.lastError }, 'upstream connection failed');
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

  #startMonitor(client: Client, generation: number): void {
    this.#stopMonitor();
    const { pingIntervalMs, pingTimeoutMs, pingFailureThreshold } = this.#deps.health;
    this.#monitor = new HealthMonitor({
      intervalMs: pingIntervalMs,
      timeoutMs: pingTimeoutMs,
      failureThreshold: pingFailureThreshold,
      ping: (timeout) => client.ping({ timeout }),
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
    const client = new Client({ name: GATEWAY_NAME, version: GATEWAY_VERSION }, { capabilities: CLIENT_CAPABILITIES });
    const { events } = this.#deps;
    client.onerror = (error) => {
      if (error instanceof NotJsonRpcError) {
        this.#notJsonRpc = error;
        this.#notJsonRpcCount++;
      }
      if (error instanceof NotJsonRpcError) this.#logger.debug({ source: error.source, sample: this.#redact(error.sample) }, 'upstream sent something that is not JSON-RPC');
      else this.#logger.debug({ err: error.message }, 'upstream transport error');
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.#refresh(client, { tools: true }));
    client.setNotificationHandler(PromptListChangedNotificationSchema, () => this.#refresh(client, { prompts: true }));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => this.#refresh(client, { resources: true }));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => events.onLogMessage(this.name, n.params, this.#owners.delivering));
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => events.onResourceUpdated(this.name, n.params.uri));
    for (const schema of [CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema]) {
      client.setRequestHandler(schema, ((request: { method: string; params?: Record<string, unknown> }, extra: { signal: AbortSignal }) =>
        events.onServerRequest(this.name, request, extra.signal, this.#owners.delivering, this.config.roots ?? [])) as never);
    }
    return client;
  }

  /**
   * Fetches the asked-for lists the upstream's capabilities offer. Each list applies only the
   * answer to its newest request: a slower, older answer arriving last is dropped.
   */
  async #fetchLists(client: Client, which: { tools?: boolean; prompts?: boolean; resources?: boolean }): Promise<void> {
    const caps = this.#capabilities;
    const timeout = this.connectTimeoutMs;
    const current = () => client === this.#client;
    const sync = this.#listSync;
    await Promise.all([
      which.tools &&
        sync.tools.run(
          () => (caps?.tools ? allPages((cursor) => client.listTools({ cursor }, { timeout }), (r) => r.tools) : Promise.resolve([])),
          (tools) => current() && (this.#tools = tools),
        ),
      which.prompts &&
        sync.prompts.run(
          () => (caps?.prompts ? allPages((cursor) => client.listPrompts({ cursor }, { timeout }), (r) => r.prompts) : Promise.resolve([])),
          (prompts) => current() && (this.#prompts = prompts),
        ),
      which.resources &&
        sync.resources.run(
          () => (caps?.resources ? allPages((cursor) => client.listResources({ cursor }, { timeout }), (r) => r.resources) : Promise.resolve([])),
          (resources) => current() && (this.#resources = resources),
        ),
      which.resources &&
        sync.templates.run(
          () =>
            caps?.resources
              ? allPages((cursor) => client.listResourceTemplates({ cursor }, { timeout }), (r) => r.resourceTemplates).catch(() => [])
              : Promise.resolve([]),
          (templates) => current() && (this.#resourceTemplates = templates),
        ),
    ]);
  }

  async #refresh(client: Client, which: { tools?: boolean; prompts?: boolean; resources?: boolean }): Promise<void> {
    if (client !== this.#client || this.#state !== 'ready') return;
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
      if (!this.#stopped && generation === this.#generation) void this.#connect();
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

/** Follows `nextCursor` until the end (at most MAX_LIST_PAGES pages, against a looping server). */
async function allPages<R extends { nextCursor?: string | undefined }, T>(
  fetchPage: (cursor: string | undefined) => Promise<R>,
  items: (page: R) => T[],
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const result = await fetchPage(cursor);
    all.push(...items(result));
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  return all;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]).finally(() => clearTimeout(timer));
}

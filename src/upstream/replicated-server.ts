import { ProtocolError, type LoggingLevel, type Prompt, type Resource, type ResourceTemplateType, type ServerCapabilities, type Tool } from '@modelcontextprotocol/client';
import { isReplicated, type HttpServerConfig, type ReplicatedServerConfig, type ServerConfig } from '../config/schema.js';
import { publicUrl, redactUrl } from '../observability/redact.js';
import type { UpstreamAuth } from './auth/upstream-auth.js';
import { Balancer, NoReplicaAvailableError } from './balancer.js';
import type { BreakerState } from './circuit-breaker.js';
import { replicaVerdictKey } from './era-verdicts.js';
import { UpstreamConnectionLostError, UpstreamUnavailableError } from './errors.js';
import { CONNECTION_REFUSED } from './failure-classification.js';
import { ReplicaSubscriptions, type SubscribingReplica } from './replica-subscriptions.js';
import { carriesTaskId, mintedFieldOf } from './minted-values.js';
import { replicaKeys, tagWithReplica, untagReplica } from './replica-tokens.js';
import type { ReplicaStatus, ServerStatus, Upstream } from './upstream.js';
import { UpstreamConnection, type UpstreamDeps, type UpstreamRequestOptions, type UpstreamState } from './upstream-connection.js';

export interface ReplicatedServerDeps {
  /** What every replica's connection is built with (its auth and change hook are added per replica). */
  connection: Omit<UpstreamDeps, 'onChange' | 'auth'>;
  /** A replica's auth, from its own one-URL definition (each replica gets its own, as a server with `url` does). */
  authFor: (definition: HttpServerConfig) => UpstreamAuth | undefined;
  /** The entry's lists or state changed (the catalog is rebuilt). */
  onChange: () => void;
  /** For `random`; `Math.random` unless a test needs another. */
  random?: () => number;
}

/**
 * Who a request is made for, as the gateway passes it (`DownstreamCall`): the affinity
 * strategies hash its session id or its principal.
 */
interface CallOwner {
  sessionId?: unknown;
  principal?: unknown;
}


class Replica implements SubscribingReplica {
  inFlight = 0;
  readonly requests = { ok: 0, error: 0 };
  /** Whether its connection was ready when last looked at: a change either way is an upstream session lost, or a new one. */
  wasReady = false;

  constructor(
    readonly index: number,
    readonly label: string,
    /** Its key in the `requestState`s and task ids it mints (`replica-tokens.ts`), and in the era verdicts. */
    readonly key: string,
    readonly url: string,
    readonly weight: number,
    readonly connection: UpstreamConnection,
  ) {}

  /** Takes a request now: connected, and its breaker would let it through (not a half-open one whose probe is out). */
  get eligible(): boolean {
    return this.connection.takesRequests;
  }

  get connected(): boolean {
    return this.connection.state === 'ready';
  }

  get keepsSubscriptions(): boolean {
    return this.connection.status().protocol?.era === 'modern';
  }

  status(): ReplicaStatus {
    const status = this.connection.status();
    return {
      replica: this.label,
      url: redactUrl(this.url),
      weight: this.weight,
      state: status.state,
      breaker: status.breaker,
      inFlight: this.inFlight,
      requests: { ...this.requests },
      lastError: status.lastError,
      connectedAt: status.connectedAt,
      nextRetryAt: status.nextRetryAt,
    };
  }
}

/**
 * One logical server served by several replicas (`urls`): one `UpstreamConnection` per URL,
 * each with its own reconnects, health pings and circuit breaker, and the `Upstream` the
 * catalog and the gateway see in front of them.
 *
 * - Lists (tools, prompts, resources, instructions) are the first ready replica's in config
 *   order, kept while none is ready. Replicas are expected to list the same; one that does not
 *   is logged once, at warn.
 * - Its `health` is `ready` when every replica is, `degraded` when some are not, `down` (or
 *   `connecting`, at first) when none is; its `state` is `ready` while any replica can serve.
 * - A request goes to a replica chosen by the strategy (`balancer.ts`) among those that are
 *   ready and whose breaker would let it through. When nothing reached the chosen one (it was
 *   not ready after all, its breaker refused, or its connection was refused), the request goes
 *   to another, until none is left untried; a request that may have been received is never
 *   sent twice.
 * - What an upstream keeps for one of its sessions stays on the replica that holds it. A task
 *   id or a 2026 `input_required` state leaves tagged with its replica's key
 *   (`replica-tokens.ts`), and a request that names it goes back there: nothing is remembered
 *   here, so any gateway process routes it. A resource subscription is pinned to its replica
 *   (`replica-subscriptions.ts`); the `logging/setLevel` of 2025 sessions goes to every ready
 *   replica. A 2025 call paused for its client, and the messages on a request's own stream,
 *   stay on their replica by themselves: they are one request in flight on one connection.
 */
export class ReplicatedServer implements Upstream {
  readonly #deps: ReplicatedServerDeps;
  readonly #replicas: readonly Replica[];
  readonly #balancer: Balancer;
  readonly #byKey: ReadonlyMap<string, Replica>;
  /** Where the lists come from: the first ready replica in config order, kept while none is. */
  #lister: Replica;
  readonly #subscriptions: ReplicaSubscriptions<Replica>;
  #warnedDiffering = false;
  #stopped = false;
  #config: ReplicatedServerConfig;

  constructor(
    readonly name: string,
    config: ReplicatedServerConfig,
    deps: ReplicatedServerDeps,
  ) {
    this.#config = config;
    this.#deps = deps;
    const labels = replicaLabels(config.urls.map((r) => r.url));
    const keys = replicaKeys(config.urls.map((r) => r.url));
    this.#replicas = config.urls.map(({ url, weight }, index) => {
      const label = labels[index]!;
      const key = keys[index]!;
      const definition = replicaDefinition(config, url);
      const connection = new UpstreamConnection(name, definition, {
        ...deps.connection,
        logger: deps.connection.logger.child({ replica: label }),
        auth: deps.authFor(definition),
        // Each replica's era is its own: part way through a rolling upgrade they differ.
        eraKey: replicaVerdictKey(name, key),
        resubscribes: false,
        onChange: () => this.#replicaChanged(),
      });
      return new Replica(index, label, key, url, weight, connection);
    });
    this.#byKey = new Map(this.#replicas.map((replica) => [replica.key, replica]));
    this.#lister = this.#replicas[0]!;
    // The ring is keyed by URL (hashed, never shown), so a replica keeps its keys when the list is reordered.
    this.#balancer = new Balancer(
      config.balance.strategy,
      config.urls.map((r) => ({ id: r.url, weight: r.weight })),
      deps.random ? { random: deps.random } : {},
    );
    this.#subscriptions = new ReplicaSubscriptions({
      send: (replica, method, params, options = {}, owner = undefined) => this.#send(replica, method, params, options, owner),
      another: (except) => this.#another(except),
      logger: deps.connection.logger.child({ server: name }),
    });
  }

  /** Starts connecting every replica in the background. */
  start(): void {
    for (const replica of this.#replicas) replica.connection.start();
  }

  /** The server's definition; its catalog settings may change while it runs (`updateCatalogSettings`). */
  get config(): ReplicatedServerConfig {
    return this.#config;
  }

  /** Takes a definition that differs in catalog settings only (see `config/server-changes.ts`); the replicas' connections keep running. */
  updateCatalogSettings(config: ServerConfig): void {
    if (!isReplicated(config)) throw new Error(`"${this.name}" would no longer list replicas: that is a new connection, not a catalog change`);
    this.#config = config;
    for (const replica of this.#replicas) replica.connection.updateCatalogSettings(replicaDefinition(config, replica.url));
  }

  /** True once no request is in flight on any replica, false when `ms` pass first. */
  async drained(ms: number): Promise<boolean> {
    const each = await Promise.all(this.#replicas.map((replica) => replica.connection.drained(ms)));
    return each.every(Boolean);
  }

  /** Stops every replica; resolves when all are closed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#replicas.map((replica) => replica.connection.stop()));
  }

  get state(): UpstreamState {
    if (!this.config.enabled) return 'disabled';
    const states = this.#replicas.map((r) => r.connection.state);
    if (states.includes('ready')) return 'ready';
    if (states.includes('connecting')) return 'connecting';
    return states.every((state) => state === 'misconfigured') ? 'misconfigured' : 'down';
  }

  get health(): UpstreamState {
    const state = this.state;
    if (state !== 'ready') return state;
    return this.#replicas.every((r) => r.connection.health === 'ready') ? 'ready' : 'degraded';
  }

  get tools(): readonly Tool[] {
    return this.#lister.connection.tools;
  }

  get prompts(): readonly Prompt[] {
    return this.#lister.connection.prompts;
  }

  get resources(): readonly Resource[] {
    return this.#lister.connection.resources;
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#lister.connection.resourceTemplates;
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#lister.connection.capabilities;
  }

  get instructions(): string | undefined {
    return this.#lister.connection.instructions;
  }

  /** While no replica is ready: why, replica by replica (each error is stored redacted by its connection). */
  get lastError(): string | undefined {
    if (this.state === 'ready') return undefined;
    const errors = this.#replicas.filter((r) => r.connection.lastError).map((r) => `${r.label}: ${r.connection.lastError}`);
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  status(): ServerStatus {
    const replicas = this.#replicas.map((r) => r.status());
    const lister = this.#lister.connection.status();
    const ready = this.state === 'ready';
    const retries = replicas.map((r) => r.nextRetryAt).filter((at) => at !== undefined);
    return {
      name: this.name,
      state: this.health,
      transport: this.config.transport,
      wire: lister.wire,
      description: this.config.description,
      tags: this.config.tags,
      toolCount: this.tools.length,
      lastError: this.lastError,
      connectedAt: ready ? lister.connectedAt : undefined,
      nextRetryAt: ready ? undefined : retries.sort()[0],
      pid: undefined,
      breaker: this.#breaker(),
      protocol: lister.protocol,
      replicas,
    };
  }

  /**
   * Sends a request to one replica (see the class comment for which), or `logging/setLevel`
   * to every ready one. Errors are the replica's own, as a server with one `url` gives them.
   */
  async request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions = {}, owner?: unknown): Promise<Record<string, unknown>> {
    if (this.#stopped) throw new UpstreamUnavailableError(this.name, 'it was removed or changed');
    if (!this.config.enabled) throw new UpstreamUnavailableError(this.name, 'disabled');
    if (method === 'logging/setLevel') return this.#toEveryReady(method, params, options, owner);
    const uri = params?.uri;
    if (method === 'resources/subscribe' && typeof uri === 'string') {
      return this.#subscriptions.subscribe(uri, params, options, owner, () => this.#balanced(method, params, options, owner));
    }
    if (method === 'resources/unsubscribe') return typeof uri === 'string' ? this.#subscriptions.unsubscribe(uri, params, options, owner) : {};
    const { replica: named, params: sent } = this.#untagged(method, params);
    const { replica, result } = named ? { replica: named, result: await this.#send(named, method, sent, options, owner) } : await this.#balanced(method, sent, options, owner);
    return this.#tagged(replica, method, result);
  }

  /**
   * A request naming what a replica minted (a task id, an `input_required` state): that
   * replica, and the params with the upstream's own value back. A value whose replica is no
   * longer listed is balanced: another replica resumes it if the replicas share what it names,
   * or refuses it as it refuses any value it did not mint.
   */
  #untagged(method: string, params: Record<string, unknown> | undefined): { replica?: Replica | undefined; params: Record<string, unknown> | undefined } {
    const field = mintedFieldOf(method, params);
    const tag = field && untagReplica(params![field] as string);
    if (!field || !tag) return { params };
    return { replica: this.#byKey.get(tag.key), params: { ...params, [field]: tag.value } };
  }

  /** A result with what its replica minted (a task id, an `input_required` state) tagged with the replica, whichever way the request came. */
  #tagged(replica: Replica, method: string, result: Record<string, unknown>): Record<string, unknown> {
    if (result.resultType === 'input_required' && typeof result.requestState === 'string') return { ...result, requestState: tagWithReplica(replica.key, result.requestState) };
    if (carriesTaskId(method, result)) return { ...result, taskId: tagWithReplica(replica.key, result.taskId) };
    return result;
  }

  /**
   * A replica chosen by the strategy; another, and another, while nothing reached the one
   * tried. A request that may have reached its replica is not sent again: a tool call is not
   * known to be safe to repeat.
   */
  async #balanced(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<{ replica: Replica; result: Record<string, unknown> }> {
    const key = this.#affinityKey(owner);
    const tried = new Set<Replica>();
    let undelivered: UndeliveredError | undefined;
    for (;;) {
      const eligible = this.#replicas.filter((r) => !tried.has(r) && r.eligible).map((r) => r.index);
      let replica: Replica;
      try {
        replica = this.#replicas[this.#balancer.pick(eligible, { key, inFlight: this.#replicas.map((r) => r.inFlight) })]!;
      } catch (error) {
        if (!(error instanceof NoReplicaAvailableError)) throw error;
        throw undelivered ?? new UpstreamUnavailableError(this.name, this.#whyNoneReady());
      }
      try {
        return { replica, result: await this.#send(replica, method, params, options, owner) };
      } catch (error) {
        if (!neverDelivered(error) || options.signal?.aborted) throw error;
        this.#deps.connection.logger.debug({ server: this.name, replica: replica.label, method, err: (error as Error).message }, 'the request did not reach its replica; trying another');
        tried.add(replica);
        undelivered = error;
      }
    }
  }

  /** Another replica that takes requests now, picked as a request made for no caller is; undefined when there is none. */
  #another(except: Replica): Replica | undefined {
    const eligible = this.#replicas.filter((r) => r !== except && r.eligible).map((r) => r.index);
    if (eligible.length === 0) return undefined;
    return this.#replicas[this.#balancer.pick(eligible, { inFlight: this.#replicas.map((r) => r.inFlight) })];
  }

  /** `logging/setLevel` reaches every ready replica (each is an upstream session of its own); the first answer is returned. */
  async #toEveryReady(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<Record<string, unknown>> {
    // A replica down now gets the level when its next session opens.
    if (typeof params?.level === 'string') for (const replica of this.#replicas) replica.connection.rememberLogLevel(params.level as LoggingLevel);
    const ready = this.#replicas.filter((r) => r.eligible);
    if (ready.length === 0) throw new UpstreamUnavailableError(this.name, this.#whyNoneReady());
    const results = await Promise.allSettled(ready.map((replica) => this.#send(replica, method, params, options, owner)));
    const answered = results.find((r) => r.status === 'fulfilled');
    if (answered) return answered.value;
    throw (results[0] as PromiseRejectedResult).reason;
  }

  async #send(replica: Replica, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<Record<string, unknown>> {
    replica.inFlight++;
    try {
      const result = await replica.connection.request(method, params, options, owner);
      replica.requests.ok++;
      return result;
    } catch (error) {
      // A JSON-RPC error is the replica's answer; anything else is a request it did not serve.
      if (error instanceof ProtocolError) replica.requests.ok++;
      else replica.requests.error++;
      throw error;
    } finally {
      replica.inFlight--;
    }
  }

  /**
   * What the affinity strategies hash: the 2025 session (a 2026-07-28 request has none: its
   * principal stands in), or the principal. None for what no caller made (a subscription's
   * upkeep, a task's status poll): those are taken in turn.
   */
  #affinityKey(owner: unknown): string | undefined {
    const strategy = this.config.balance.strategy;
    if ((strategy !== 'session_affinity' && strategy !== 'user_affinity') || owner === null || typeof owner !== 'object') return undefined;
    const { sessionId, principal } = owner as CallOwner;
    const user = typeof principal === 'string' ? `user\0${principal}` : undefined;
    if (strategy === 'user_affinity') return user;
    return typeof sessionId === 'string' ? `session\0${sessionId}` : user;
  }

  #whyNoneReady(): string {
    const each = this.#replicas.map((r) => {
      const state = r.connection.state;
      if (state !== 'ready') return `${r.label} ${state}`;
      return `${r.label} ${r.connection.breakerState === 'open' ? 'circuit breaker open' : 'circuit breaker half-open, its probe under way'}`;
    });
    return `none of its ${this.#replicas.length} replicas can take requests (${each.join(', ')})`;
  }

  /** The server's breaker as one: over the replicas that are connected (one that is down says nothing of the others), else over all. */
  #breaker(): BreakerState {
    const connected = this.#replicas.filter((r) => r.connected);
    return leastOpen((connected.length > 0 ? connected : this.#replicas).map((r) => r.connection.breakerState));
  }

  /**
   * A replica's state or lists changed: the lists come from the first ready one, and one that
   * lists differently is reported once; a replica that went down or came back has its
   * subscriptions moved or made again.
   */
  #replicaChanged(): void {
    if (this.#stopped) return;
    for (const replica of this.#replicas) {
      if (replica.connected === replica.wasReady) continue;
      replica.wasReady = replica.connected;
      if (replica.connected) this.#subscriptions.replicaUp(replica);
      else this.#subscriptions.replicaDown(replica);
    }
    const ready = this.#replicas.filter((r) => r.connection.state === 'ready');
    if (ready[0]) this.#lister = ready[0];
    if (!this.#warnedDiffering && ready.length > 1) {
      const expected = listSignature(this.#lister.connection);
      const differing = ready.filter((r) => listSignature(r.connection) !== expected);
      if (differing.length > 0) {
        this.#warnedDiffering = true;
        this.#deps.connection.logger.warn(
          { server: this.name, listing: this.#lister.label, differing: differing.map((r) => r.label) },
          'replicas of one server list different tools, prompts or resource templates; the first ready replica in config order is listed, calls go to any',
        );
      }
    }
    this.#deps.onChange();
  }
}

/** The one-URL definition a replica's connection is opened with: the server's, with its URL. */
function replicaDefinition(config: ReplicatedServerConfig, url: string): HttpServerConfig {
  const { urls: _urls, balance: _balance, ...common } = config;
  return { ...common, url };
}

/**
 * Each replica's name in metrics and listings: its scheme, host and port, which are no secret
 * (a path may hold a key, as a query or user info may). Replicas that share them are told apart
 * by their index.
 */
export function replicaLabels(urls: readonly string[]): string[] {
  const bases = urls.map((url, index) => publicUrl(url) || `#${index}`);
  return bases.map((base, index) => (bases.indexOf(base) !== bases.lastIndexOf(base) ? `${base}#${index}` : base));
}

/** A failure that says the request never reached its upstream (only a refused connection among the lost ones). */
type UndeliveredError = UpstreamUnavailableError | UpstreamConnectionLostError;

/** Whether nothing of the request reached the upstream: it was refused before it was sent, or its connection was refused. */
function neverDelivered(error: unknown): error is UndeliveredError {
  if (error instanceof UpstreamUnavailableError) return true;
  return error instanceof UpstreamConnectionLostError && error.constructor === UpstreamConnectionLostError && error.reason === CONNECTION_REFUSED;
}

/** The server's breaker as one: as open as its least open replica's (calls still flow while one is closed). */
function leastOpen(states: readonly BreakerState[]): BreakerState {
  if (states.includes('closed')) return 'closed';
  return states.includes('half-open') ? 'half-open' : 'open';
}

/** What replicas of one server are expected to list alike: names, not descriptions (a rolling upgrade may reword one). */
function listSignature(connection: UpstreamConnection): string {
  const names = (items: readonly { name?: string; uriTemplate?: string }[]) => items.map((i) => i.name ?? i.uriTemplate ?? '').sort().join('\n');
  return [names(connection.tools), names(connection.prompts), names(connection.resourceTemplates)].join('\0');
}

import { randomUUID } from 'node:crypto';
import type { Prompt, Resource, ResourceTemplateType, ServerCapabilities, Tool } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { ServerConfig, StdioServerConfig } from '../config/schema.js';
import { bestEffort } from '../observability/best-effort.js';
import type { LeaseStore } from '../state/shared-state.js';
import { UpstreamUnavailableError } from './errors.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { ServerStatus, Upstream } from './upstream.js';
import type { UpstreamConnection, UpstreamEventSink, UpstreamRequestOptions, UpstreamState, UpstreamStatus } from './upstream-connection.js';

/** How long a replica holds the lease of a `processes: one` server without renewing it. */
const OWNER_LEASE_TTL_MS = 10_000;
/**
 * How long before the lease runs out a holder whose renewals go unanswered stops the process, so
 * that it has exited before another replica may start one: the longest a stop takes (stdin
 * closed, SIGTERM 2 s later, SIGKILL 2 s after that: `stdio-transport.ts`) and a margin. The
 * holder renews every third of the 5 s left.
 */
const OWNER_STOP_BUDGET_MS = 5000;

/** What a `processes: one` server looks like on the replica running its process, as the others are told. */
export interface OwnerView {
  /** The server's entry on that replica (a new one after a config change) and its count of views: an older view never replaces a newer one. */
  epoch: string;
  sequence: number;
  state: UpstreamState;
  tools: Tool[];
  prompts: Prompt[];
  resources: Resource[];
  resourceTemplates: ResourceTemplateType[];
  capabilities?: ServerCapabilities | undefined;
  instructions?: string | undefined;
  status: UpstreamStatus;
}

/** How the replicas of a `processes: one` server reach each other (over the replica bus: `gateway/owner-requests.ts`). */
export interface OwnerLink {
  readonly replicaId: string;
  readonly leases: LeaseStore;
  /** Where the process's own messages go while it runs here: this replica's sessions and calls, and every replica for those about no call. */
  readonly events: UpstreamEventSink;
  /** Lets the other replicas reach the server here (its process, its views); returns the detach. */
  attach(server: SingleOwnerServer): () => void;
  /** Tells every other replica how the server looks here. */
  publish(server: string, view: OwnerView): void;
  /** Asks `holder` how the server looks there. */
  fetch(holder: string, server: string): Promise<OwnerView>;
  /** Sends a request to the process on `holder`; `lost` aborts (its reason a text) when that replica no longer runs it. */
  request(holder: string, server: string, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions & { timeout: number }, owner: unknown, lost: AbortSignal): Promise<Record<string, unknown>>;
  /** Asks `holder` to restart the process. */
  restart(holder: string, server: string): Promise<void>;
  /** Tells the other replicas this one let go of the lease, so that one takes it now. */
  released(server: string): void;
}

export interface SingleOwnerDeps {
  link: OwnerLink;
  /** A new connection to the server (its process is started when it starts); `onChange` is its change hook. */
  connect: (onChange: () => void) => UpstreamConnection;
  /** The entry's lists or state changed (the catalog is rebuilt). */
  onChange: () => void;
  logger: Logger;
}

const NO_HOLDER = 'no gateway process runs it right now (one takes it over within seconds)';
/** A view told to all can be lost (pub/sub keeps nothing): it is asked for again every this many rounds (about half a minute). */
const VIEW_REFRESH_ROUNDS = 15;

/**
 * The entry of a stdio server with `processes: one`, on every gateway process: exactly one of
 * them (the holder of the lease `stdio:<name>` in the shared state) runs the server's process;
 * the others list what the holder tells them and send their requests to it over the replica
 * bus. A holder that stops lets go of the lease, and one that dies stops renewing it: another
 * process takes it within a few seconds and starts the server there.
 *
 * A resource subscription is counted per replica on the holder (one replica's last unsubscribe
 * leaves the others' standing), and each replica makes its own again on a new holder, whose
 * process has none.
 */
export class SingleOwnerServer implements Upstream {
  readonly #deps: SingleOwnerDeps;
  readonly #keeper: LeaseKeeper;
  readonly #epoch = randomUUID();
  #sequence = 0;
  /** The server's connection, while this replica holds the lease. */
  #local: UpstreamConnection | undefined;
  /** The stop of the process that ran here last, until it has exited: no other starts here before. */
  #stopping: Promise<void> | undefined;
  /** The holder this entry last dealt with; a change fails the requests waiting on the one before. */
  #holder: string | undefined;
  #lost = new AbortController();
  /** The last view heard, and from whom (kept for its lists while no holder tells another). */
  #remote: { from: string; view: OwnerView } | undefined;
  #fetching = false;
  /** While holding: which replicas hold each resource subscription on the process. */
  readonly #subscribers = new SubscriberSets();
  /** The resources this replica's sessions subscribed to, made again on each new process. */
  readonly #subscribed = new Set<string>();
  /** The process (holder and connection time) this replica's subscriptions were last made on. */
  #subscribedOn: string | undefined;
  /** When the connection here last connected: a new process has no subscriptions. */
  #localConnectedAt: string | undefined;
  #detach: (() => void) | undefined;
  #publishQueued = false;
  #stopped = false;
  #config: StdioServerConfig;

  constructor(
    readonly name: string,
    config: StdioServerConfig,
    deps: SingleOwnerDeps,
  ) {
    this.#config = config;
    this.#deps = deps;
    this.#keeper = new LeaseKeeper({
      name: `stdio:${name}`,
      leases: deps.link.leases,
      replicaId: deps.link.replicaId,
      ttlMs: OWNER_LEASE_TTL_MS,
      stopBudgetMs: OWNER_STOP_BUDGET_MS,
      logger: deps.logger.child({ server: name }),
      onRound: () => this.#leaseRound(),
    });
  }

  /** The server's definition; its catalog settings may change while it runs (`updateCatalogSettings`). */
  get config(): StdioServerConfig {
    return this.#config;
  }

  /**
   * Takes a definition that differs in catalog settings only (see `config/server-changes.ts`):
   * the process keeps running, here or on the replica that holds it (which reads the same
   * change from its own config file).
   */
  updateCatalogSettings(config: ServerConfig): void {
    if (config.transport !== 'stdio') throw new Error(`"${this.name}" would no longer be a stdio server: that is a new connection, not a catalog change`);
    this.#config = config;
    this.#local?.updateCatalogSettings(config);
  }

  /** Starts taking part in the lease (a disabled server takes no part). */
  start(): void {
    if (!this.config.enabled || this.#stopped) return;
    this.#detach = this.#deps.link.attach(this);
    this.#keeper.start();
  }

  /**
   * Stops the process when it runs here, then lets go of the lease, so that another process
   * takes it at once; resolves once the process has exited and the lease is let go.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#detach?.();
    const ran = this.#local !== undefined;
    await this.#stopLocal();
    await this.#keeper.stop();
    if (ran) this.#deps.link.released(this.name);
    this.#lost.abort('the gateway stopped');
  }

  /** The connection to the process, while it runs here. */
  get running(): UpstreamConnection | undefined {
    return this.#local;
  }

  /** The replica running the process, as last seen (this one's id when here). */
  get holder(): string | undefined {
    return this.#keeper.holder;
  }

  get state(): UpstreamState {
    if (!this.config.enabled) return 'disabled';
    if (this.#local) return this.#local.state;
    const view = this.#current();
    if (view) return view.state;
    return this.#keeper.holder !== undefined || this.#keeper.rounds === 0 ? 'connecting' : 'down';
  }

  get health(): UpstreamState {
    if (this.#local) return this.#local.health;
    return this.#current()?.status.state ?? this.state;
  }

  get tools(): readonly Tool[] {
    return this.#local?.tools ?? this.#remote?.view.tools ?? [];
  }

  get prompts(): readonly Prompt[] {
    return this.#local?.prompts ?? this.#remote?.view.prompts ?? [];
  }

  get resources(): readonly Resource[] {
    return this.#local?.resources ?? this.#remote?.view.resources ?? [];
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#local?.resourceTemplates ?? this.#remote?.view.resourceTemplates ?? [];
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#local ? this.#local.capabilities : this.#remote?.view.capabilities;
  }

  get instructions(): string | undefined {
    return this.#local ? this.#local.instructions : this.#current()?.instructions;
  }

  get lastError(): string | undefined {
    if (this.#local) return this.#local.lastError;
    const view = this.#current();
    if (view) return view.status.lastError;
    return this.state === 'down' ? NO_HOLDER : undefined;
  }

  status(): ServerStatus {
    if (this.#local) return { ...this.#local.status(), owner: 'here' };
    const view = this.#current();
    const holder = this.#keeper.holder;
    const base: ServerStatus = view?.status ?? {
      name: this.name,
      state: this.state,
      transport: 'stdio',
      wire: undefined,
      description: this.config.description,
      tags: this.config.tags,
      toolCount: this.tools.length,
      lastError: this.lastError,
      connectedAt: undefined,
      nextRetryAt: undefined,
      pid: undefined,
      breaker: 'closed',
      protocol: undefined,
    };
    return { ...base, ...(holder !== undefined ? { owner: holder } : {}) };
  }

  /** Sends the request to the process: here when it runs here, else through the replica running it. */
  async request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions = {}, owner?: unknown): Promise<Record<string, unknown>> {
    const uri = params?.uri;
    // Let go of whether or not the process answers (it may be down): a new one is not subscribed to it.
    if (typeof uri === 'string' && method === 'resources/unsubscribe') this.#subscribed.delete(uri);
    const result = await this.#send(method, params, options, owner);
    if (typeof uri === 'string' && method === 'resources/subscribe') this.#subscribed.add(uri);
    return result;
  }

  /**
   * A request for the process running here, made by `replica` (this one or another). A resource
   * subscription reaches the process when the first replica makes it and the last one drops it.
   */
  async requestFor(replica: string, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions = {}, owner?: unknown): Promise<Record<string, unknown>> {
    const connection = this.#local;
    if (!connection) throw new UpstreamUnavailableError(this.name, `its process no longer runs on gateway process ${this.#deps.link.replicaId}`);
    const uri = params?.uri;
    if (typeof uri !== 'string' || (method !== 'resources/subscribe' && method !== 'resources/unsubscribe')) return connection.request(method, params, options, owner);
    if (method === 'resources/subscribe') {
      if (!this.#subscribers.add(uri, replica)) return {};
      try {
        return await connection.request(method, params, options, owner);
      } catch (error) {
        this.#subscribers.remove(uri, replica);
        throw error;
      }
    }
    return this.#subscribers.remove(uri, replica) ? connection.request(method, params, options, owner) : {};
  }

  /** How the server looks here, for the other replicas; undefined while it does not run here. */
  view(): OwnerView | undefined {
    const local = this.#local;
    if (!local) return undefined;
    return {
      epoch: this.#epoch,
      sequence: ++this.#sequence,
      state: local.state,
      tools: [...local.tools],
      prompts: [...local.prompts],
      resources: [...local.resources],
      resourceTemplates: [...local.resourceTemplates],
      capabilities: local.capabilities,
      instructions: local.instructions,
      status: local.status(),
    };
  }

  /** Another replica told how the server looks there. Only the holder's views count; one from elsewhere means the lease moved: it is looked at now. */
  heard(from: string, view: OwnerView): void {
    if (this.#local || this.#stopped) return;
    if (from !== this.#keeper.holder) {
      void this.#keeper.renew();
      return;
    }
    const known = this.#remote;
    if (known?.from === from && known.view.epoch === view.epoch && known.view.sequence >= view.sequence) return;
    this.#remote = { from, view };
    this.#subscribeAgainIfNew();
    this.#deps.onChange();
  }

  /** Looks at the lease now rather than at the next round: its holder let go of it, or no longer answers. */
  lookAgain(): void {
    void this.#keeper.renew();
  }

  /** Restarts the process (a fresh one, its backoff reset), wherever it runs. */
  async restartProcess(): Promise<void> {
    if (this.#local || (this.#stopping && this.#keeper.held)) {
      // The new process starts once the old one has exited (see `#stopLocal`).
      await this.#stopLocal();
      return;
    }
    const holder = this.#keeper.holder;
    if (holder === undefined) throw new UpstreamUnavailableError(this.name, NO_HOLDER);
    await this.#deps.link.restart(holder, this.name);
  }

  #send(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<Record<string, unknown>> {
    if (this.#local) return this.requestFor(this.#deps.link.replicaId, method, params, options, owner);
    const holder = this.#keeper.holder;
    if (holder === undefined) return Promise.reject(new UpstreamUnavailableError(this.name, NO_HOLDER));
    const timeout = options.timeout ?? this.config.timeout * 1000;
    return this.#deps.link.request(holder, this.name, method, params, { ...options, timeout }, owner, this.#lost.signal);
  }

  /** The view of the holder known now, if it told one. */
  #current(): OwnerView | undefined {
    const holder = this.#keeper.holder;
    return holder !== undefined && this.#remote?.from === holder ? this.#remote.view : undefined;
  }

  /** After each lease round: start or stop the process here, and follow a change of holder. */
  #leaseRound(): void {
    if (this.#stopped) return;
    const { held, holder } = this.#keeper;
    if (held && !this.#local && !this.#stopping) {
      this.#deps.logger.info({ server: this.name }, 'this gateway process took the lease of a processes: one server; starting it here');
      this.#startLocal();
    } else if (!held && this.#local) {
      this.#deps.logger.warn({ server: this.name }, 'this gateway process lost the lease of a processes: one server; stopping it here');
      void this.#stopLocal();
    }
    if (holder !== this.#holder) {
      const previous = this.#holder;
      this.#holder = holder;
      // Requests waiting on the replica that ran it cannot be answered by it any more.
      if (previous !== undefined && previous !== this.#deps.link.replicaId) this.#lost.abort(`the gateway process running it (${previous}) no longer does`);
      this.#lost = new AbortController();
      this.#deps.onChange();
    } else if (this.#keeper.rounds === 1 && holder === undefined) {
      // The first round found nobody running it (`state` goes from connecting to down): told, as any change is.
      this.#deps.onChange();
    }
    if (holder !== undefined && !held && (!this.#current() || this.#keeper.rounds % VIEW_REFRESH_ROUNDS === 0)) void this.#fetchView(holder);
  }

  /** Starts the process here, unless the one before is still exiting: then that stop starts it once done. */
  #startLocal(): void {
    if (this.#stopping) return;
    this.#local = this.#deps.connect(() => this.#localChanged());
    this.#local.start();
    this.#localChanged();
  }

  /**
   * Stops the process running here; resolves once it has exited (and once an earlier stop has,
   * when none runs). Never two at once: a process starts here only when no stop is under way,
   * and a stop that ends while the lease is still held (a restart) starts the next one.
   */
  #stopLocal(): Promise<void> {
    const local = this.#local;
    if (!local) return this.#stopping ?? Promise.resolve();
    this.#local = undefined;
    this.#subscribers.clear();
    const stopping: Promise<void> = bestEffort(() => local.stop(), this.#deps.logger, `stop the process of "${this.name}"`, 'warn').then(() => {
      this.#stopping = undefined;
      if (this.#keeper.held && !this.#stopped && !this.#local) this.#startLocal();
    });
    this.#stopping = stopping;
    return stopping;
  }

  /** The process's connection changed: the others are told (once per tick), and the catalog here rebuilt. */
  #localChanged(): void {
    const connectedAt = this.#local?.status().connectedAt;
    if (connectedAt !== this.#localConnectedAt) {
      this.#localConnectedAt = connectedAt;
      this.#subscribers.clear();
    }
    this.#subscribeAgainIfNew();
    this.#deps.onChange();
    if (this.#publishQueued) return;
    this.#publishQueued = true;
    queueMicrotask(() => {
      this.#publishQueued = false;
      const view = this.view();
      if (view) this.#deps.link.publish(this.name, view);
    });
  }

  async #fetchView(holder: string): Promise<void> {
    if (this.#fetching) return;
    this.#fetching = true;
    try {
      this.heard(holder, await this.#deps.link.fetch(holder, this.name));
    } catch (error) {
      // The next round asks again.
      this.#deps.logger.debug({ err: error, server: this.name, holder }, 'could not get the view of a processes: one server from its holder');
    } finally {
      this.#fetching = false;
    }
  }

  /**
   * A process that is new to this replica (a new holder's, or one restarted) has none of the
   * subscriptions of this replica's sessions: they are made again once it is ready.
   */
  #subscribeAgainIfNew(): void {
    const status = this.#local?.status() ?? this.#current()?.status;
    if (!status?.connectedAt || this.state !== 'ready') return;
    const process = `${this.#keeper.holder}/${status.connectedAt}`;
    if (process === this.#subscribedOn) return;
    this.#subscribedOn = process;
    for (const uri of this.#subscribed) {
      void bestEffort(() => this.#send('resources/subscribe', { uri }, {}, undefined), this.#deps.logger, `subscribe to ${uri} again on the new process of "${this.name}"`, 'warn');
    }
  }
}

/** Which replicas hold each resource subscription on the process: it is asked for the first and told of the last. */
class SubscriberSets {
  readonly #sets = new Map<string, Set<string>>();

  /** True when `replica` is the first to hold `uri` (the process is to be asked). */
  add(uri: string, replica: string): boolean {
    const set = this.#sets.get(uri);
    if (set) {
      set.add(replica);
      return false;
    }
    this.#sets.set(uri, new Set([replica]));
    return true;
  }

  /** True when `replica` was the last to hold `uri` (the process is to be told). */
  remove(uri: string, replica: string): boolean {
    const set = this.#sets.get(uri);
    if (!set?.delete(replica) || set.size > 0) return false;
    this.#sets.delete(uri);
    return true;
  }

  clear(): void {
    this.#sets.clear();
  }
}

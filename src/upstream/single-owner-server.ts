import { randomUUID } from 'node:crypto';
import type { Prompt, Resource, ResourceTemplateType, ServerCapabilities, Tool } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { ServerConfig, StdioServerConfig } from '../config/schema.js';
import { bestEffort } from '../observability/best-effort.js';
import type { LeaseStore } from '../state/shared-state.js';
import { UpstreamUnavailableError } from './errors.js';
import { InFlightRequests } from './in-flight.js';
import { LeaseKeeper } from './lease-keeper.js';
import { connectTimeoutMsOf } from './per-user-server.js';
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

/** What the server lists, as a connection or a view has it. */
interface Lists {
  readonly tools: readonly Tool[];
  readonly prompts: readonly Prompt[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplateType[];
  readonly capabilities?: ServerCapabilities | undefined;
  readonly instructions?: string | undefined;
}
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
  /** The lease, and the knowledge of who holds it: handed on to the entry of a new definition (`succeed`). */
  #keeper: LeaseKeeper;
  /** Which entry the keeper's rounds are reported to: this one, until it hands the keeper on. */
  #rounds: { to: SingleOwnerServer };
  /**
   * The entry of the server's new definition, once this one handed it its lease (`succeed`): its
   * stop lets go of no lease, it tells no view, and requests not yet sent go there.
   */
  #successor: SingleOwnerServer | undefined;
  /**
   * The entry this one took over from (`succeed`), until it has ended: a stop of this one (a
   * removal) ends it at once, and the loss of the lease stops its process at once (`#leaseRound`).
   */
  #predecessor: SingleOwnerServer | undefined;
  /** Requests sent through this entry and not yet answered: the entry that replaces it waits for them (`succeed`). */
  readonly #inFlight = new InFlightRequests();
  /**
   * While the process here is being replaced by that of a new definition (`succeed`) or by a
   * fresh one (a restart): the connection made for the new process, not yet started (the old one
   * has not exited yet).
   */
  #pending: UpstreamConnection | undefined;
  /** While the process here is being replaced (`succeed`, a restart): requests wait for the new one, and the catalog keeps the old one's lists. */
  #replacing: { carried: Lists; open: () => void; until: Promise<void>; timer: NodeJS.Timeout } | undefined;
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
    const rounds: { to: SingleOwnerServer } = { to: this };
    this.#rounds = rounds;
    this.#keeper = new LeaseKeeper({
      name: `stdio:${name}`,
      leases: deps.link.leases,
      replicaId: deps.link.replicaId,
      ttlMs: OWNER_LEASE_TTL_MS,
      stopBudgetMs: OWNER_STOP_BUDGET_MS,
      logger: deps.logger.child({ server: name }),
      onRound: () => rounds.to.#leaseRound(),
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
   * takes it at once; resolves once the process has exited and the lease is let go. An entry
   * that handed its lease on (`succeed`) lets go of nothing. The server being removed or the
   * gateway stopping, the entry this one is taking over from stops now too, the calls it was
   * finishing cut as a removal cuts them.
   */
  async stop(): Promise<void> {
    await Promise.all([this.#predecessor?.stop(), this.#end()]);
  }

  async #end(): Promise<void> {
    this.#stopped = true;
    this.#detach?.();
    this.#settleReplacing();
    const ran = this.#local !== undefined;
    await this.#stopLocal();
    if (this.#successor === undefined) {
      await this.#keeper.stop();
      if (ran) this.#deps.link.released(this.name);
    }
    this.#lost.abort('the gateway stopped');
  }

  /** Whether this entry can take over from `previous` (`succeed`): both take part in the lease. */
  canSucceed(previous: SingleOwnerServer): boolean {
    return this.config.enabled && previous.config.enabled && previous.#detach !== undefined && !previous.#stopped && !previous.#successor && !this.#stopped;
  }

  /**
   * Takes over from `previous`, the entry of the server's former definition, before `start`:
   * its lease (and the knowledge of who holds it), its lists and its resource subscriptions.
   * The old and the new process never run at once, even for a moment: `processes: one` is
   * chosen for a server that must run once (state in its process or on its disk, a browser
   * profile or a licence that allows one instance), so a new process opened beside the old one
   * could corrupt that state or fail on its lock. What can be spared is spared instead:
   *
   * - The lease stays with this gateway process (no other takes it in between), so the replicas
   *   that send it their calls keep sending them here.
   * - The calls in flight on the old process end there (within `drainMs`) before it is stopped,
   *   unless the lease is lost meanwhile: then it stops at once, as the process it holds would.
   * - A call that arrives meanwhile, here or from another replica, waits for the new process
   *   (ready, or failed its first attempt) rather than failing, within the old one's drain,
   *   its exit and the new one's connect timeout.
   * - The old process's lists stay in the catalog until the new one lists its own.
   *
   * Resolves once the old process has exited (the new one starts then). On a replica that does
   * not run the process, the calls in flight through `previous` end before it stops, and the
   * calls that follow go to the holder at once.
   */
  succeed(previous: SingleOwnerServer, drainMs: number): Promise<void> {
    this.#keeper = previous.#keeper;
    this.#rounds = previous.#rounds;
    this.#rounds.to = this;
    previous.#successor = this;
    this.#predecessor = previous;
    this.#holder = previous.#holder;
    this.#remote = previous.#remote;
    this.#subscribedOn = previous.#subscribedOn;
    for (const uri of previous.#subscribed) this.#subscribed.add(uri);
    const processHere = previous.#local !== undefined || previous.#stopping !== undefined;
    const carried = listsOf(previous);
    // Requests waiting there for a process of its own (a change made while the one before was
    // being replaced) come here instead: its process, not started yet, never will be.
    previous.#settleReplacing(true);
    const retired = previous.#retire(drainMs).finally(() => {
      if (this.#predecessor === previous) this.#predecessor = undefined;
    });
    if (!processHere) return retired;
    // No process starts here before the old one has exited, whenever this replica holds the lease.
    const stopping: Promise<void> = retired.then(() => this.#stopEnded(stopping));
    this.#stopping = stopping;
    if (this.#keeper.held) this.#awaitNewProcess(carried, drainMs + OWNER_STOP_BUDGET_MS + connectTimeoutMsOf(this.config));
    return retired;
  }

  /**
   * Holds the requests that come, here or from other replicas, while the process here is being
   * replaced (`succeed`, a restart) until the new one has come up (`#settleReplacing`), within
   * `ms`; the catalog keeps `carried` meanwhile. Requests already held for a replacement that
   * this one supersedes (a restart of a process still connecting) wait on for this one.
   */
  #awaitNewProcess(carried: Lists, ms: number): void {
    const waiting = this.#replacing;
    if (waiting) clearTimeout(waiting.timer);
    let open = waiting?.open ?? (() => {});
    const until = waiting?.until ?? new Promise<void>((resolve) => (open = resolve));
    const timer = setTimeout(() => this.#settleReplacing(true), ms);
    timer.unref();
    this.#replacing = { carried, open, until, timer };
    // Made now, so that requests from other replicas find the server running here and wait; started once the old process has exited (`#stopEnded`).
    this.#pending = this.#deps.connect(() => this.#localChanged());
    this.#local = this.#pending;
  }

  /** The connection to the process, while it runs here (while it is being replaced, the new one's, not started yet). */
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
    return this.#lists()?.tools ?? [];
  }

  get prompts(): readonly Prompt[] {
    return this.#lists()?.prompts ?? [];
  }

  get resources(): readonly Resource[] {
    return this.#lists()?.resources ?? [];
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#lists()?.resourceTemplates ?? [];
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#lists()?.capabilities;
  }

  get instructions(): string | undefined {
    if (this.#replacing || this.#local) return this.#lists()?.instructions;
    return this.#current()?.instructions;
  }

  get lastError(): string | undefined {
    if (this.#local) return this.#local.lastError;
    const view = this.#current();
    if (view) return view.status.lastError;
    return this.state === 'down' ? NO_HOLDER : undefined;
  }

  status(): ServerStatus {
    if (this.#local) return { ...this.#local.status(), toolCount: this.tools.length, owner: 'here' };
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
    const entry = await this.#serving(options.signal);
    if (entry !== this) return entry.request(method, params, options, owner);
    const uri = params?.uri;
    // Let go of whether or not the process answers (it may be down): a new one is not subscribed to it.
    if (typeof uri === 'string' && method === 'resources/unsubscribe') this.#subscribed.delete(uri);
    const end = this.#inFlight.begin();
    try {
      const result = await this.#send(method, params, options, owner);
      if (typeof uri === 'string' && method === 'resources/subscribe') this.#subscribed.add(uri);
      return result;
    } finally {
      end();
    }
  }

  /**
   * A request for the process running here, made by `replica` (this one or another). A resource
   * subscription reaches the process when the first replica makes it and the last one drops it.
   */
  async requestFor(replica: string, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions = {}, owner?: unknown): Promise<Record<string, unknown>> {
    const entry = await this.#serving(options.signal);
    if (entry !== this) return entry.requestFor(replica, method, params, options, owner);
    const end = this.#inFlight.begin();
    try {
      return await this.#requestHere(replica, method, params, options, owner);
    } finally {
      end();
    }
  }

  /**
   * The entry a request goes through: this one, once the process here is no longer being
   * replaced (`succeed`: the request waits for the new one), or the one that succeeded it.
   * Only requests sent through this entry count as in flight here: one that waits is not
   * what the old process must finish before the new one may start.
   */
  async #serving(signal: AbortSignal | undefined): Promise<SingleOwnerServer> {
    const replacing = this.#replacing;
    if (replacing) await untilAborted(replacing.until, signal);
    return this.#successor ?? this;
  }

  async #requestHere(replica: string, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<Record<string, unknown>> {
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
      tools: [...this.tools],
      prompts: [...this.prompts],
      resources: [...this.resources],
      resourceTemplates: [...this.resourceTemplates],
      capabilities: this.capabilities,
      instructions: this.instructions,
      status: { ...local.status(), toolCount: this.tools.length },
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

  /**
   * Restarts the process (a fresh one, its backoff reset), wherever it runs; resolves once the
   * old one has exited. Where it runs, the lease stays here, and the calls that come meanwhile,
   * here or from other replicas, wait for the new process as for that of a new definition
   * (`succeed`), within the old one's exit and the new one's connect timeout: a restart alone
   * fails none of them, and one whose new process cannot start fails them with its reason.
   */
  async restartProcess(): Promise<void> {
    // Being replaced (`succeed`, a restart): the process to come is a fresh one, not started yet, and calls wait for it.
    if (this.#pending) return this.#stopping;
    if (this.#local || (this.#stopping && this.#keeper.held)) {
      const carried = listsOf(this);
      // The new process starts once the old one has exited (see `#stopEnded`).
      const stopped = this.#stopLocal();
      if (this.#keeper.held && !this.#stopped) this.#awaitNewProcess(carried, OWNER_STOP_BUDGET_MS + connectTimeoutMsOf(this.config));
      await stopped;
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

  /** Where the lists come from now: the old process's while it is being replaced here, the process here, or the holder's last view. */
  #lists(): Lists | undefined {
    return this.#replacing?.carried ?? this.#local ?? this.#remote?.view;
  }

  /**
   * Ends the replacement of the process here (`succeed`, a restart) once the new one has come up (ready,
   * or failed its first attempt), none is to run here any more, the entry stopped, or (`late`)
   * its time is up: the requests waiting go on, and the lists are the new process's.
   */
  #settleReplacing(late = false): void {
    const replacing = this.#replacing;
    if (!replacing) return;
    const local = this.#local;
    const done = late || this.#stopped || (local ? local !== this.#pending && local.state !== 'connecting' : this.#stopping === undefined);
    if (!done) return;
    this.#replacing = undefined;
    clearTimeout(replacing.timer);
    replacing.open();
    this.#deps.onChange();
    this.#publishSoon();
  }

  /**
   * Ends this entry once its server has a new definition (`succeed`, which took its lease):
   * after the requests in flight through it have ended (or `ms` passed), its process here, if
   * any, is stopped; resolves once that has exited.
   */
  async #retire(ms: number): Promise<void> {
    await this.#inFlight.idleWithin(ms);
    await this.#end();
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
    } else if (!held) {
      // After a handover (`succeed`) the process of a former definition, still finishing its
      // calls, runs under this lease too: it must be gone before another replica may take the
      // lease, as this entry's own must, not once its calls have ended.
      const running = [this, ...this.#predecessors()].filter((entry) => entry.#local !== undefined);
      if (running.length > 0) this.#deps.logger.warn({ server: this.name }, 'this gateway process lost the lease of a processes: one server; stopping it here');
      for (const entry of running) void entry.#stopLocal();
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

  /** The entries this one took over from (`succeed`) that have not ended yet, the latest first. */
  #predecessors(): SingleOwnerServer[] {
    const entries: SingleOwnerServer[] = [];
    for (let entry = this.#predecessor; entry; entry = entry.#predecessor) entries.push(entry);
    return entries;
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
   * when none runs, or when this one began before that ended). Never two at once: a process
   * starts here only when no stop is under way, and a stop that ends while the lease is still
   * held (a restart) starts the next one.
   */
  #stopLocal(): Promise<void> {
    const local = this.#local;
    if (!local) return this.#stopping ?? Promise.resolve();
    this.#local = undefined;
    if (local === this.#pending) this.#pending = undefined;
    this.#subscribers.clear();
    const before = this.#stopping;
    const stopped = bestEffort(() => local.stop(), this.#deps.logger, `stop the process of "${this.name}"`, 'warn');
    const stopping: Promise<void> = Promise.all([before, stopped]).then(() => this.#stopEnded(stopping));
    this.#stopping = stopping;
    return stopping;
  }

  /** A stop here ended (the last one under way): the process wanted here meanwhile starts now. */
  #stopEnded(stopping: Promise<void>): void {
    if (this.#stopping !== stopping) return;
    this.#stopping = undefined;
    const pending = this.#pending;
    this.#pending = undefined;
    if (!this.#stopped && this.#successor === undefined && this.#keeper.held) {
      // Made while the old process was exiting (`succeed`), or wanted since (a restart, the lease taken).
      if (pending && pending === this.#local) {
        pending.start();
        this.#localChanged();
      } else if (!this.#local) this.#startLocal();
    } else if (pending && pending === this.#local) void this.#stopLocal();
    this.#settleReplacing();
  }

  /** The process's connection changed: the others are told (once per tick), and the catalog here rebuilt. */
  #localChanged(): void {
    const connectedAt = this.#local?.status().connectedAt;
    if (connectedAt !== this.#localConnectedAt) {
      this.#localConnectedAt = connectedAt;
      this.#subscribers.clear();
    }
    this.#settleReplacing();
    this.#subscribeAgainIfNew();
    this.#deps.onChange();
    this.#publishSoon();
  }

  /** Tells the other replicas how the server looks here, once per tick (an entry that handed its lease on tells nothing). */
  #publishSoon(): void {
    if (this.#publishQueued || this.#successor !== undefined) return;
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

/** What `entry` lists now, kept as it is (a new process lists anew). */
function listsOf(entry: Upstream): Lists {
  return {
    tools: entry.tools,
    prompts: entry.prompts,
    resources: entry.resources,
    resourceTemplates: entry.resourceTemplates,
    capabilities: entry.capabilities,
    instructions: entry.instructions,
  };
}

/** `work`, unless `signal` aborts first: then its reason (as a cancelled request fails). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
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

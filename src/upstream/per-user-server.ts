import { createHash } from 'node:crypto';
import type { Prompt, Resource, ResourceTemplateType, ServerCapabilities, Tool } from '@modelcontextprotocol/client';
import type { Principal } from '../auth/principal.js';
import type { ServerConfig } from '../config/schema.js';
import type { AuthFor, CallerIdentity } from './auth/upstream-auth.js';
import { UpstreamUnavailableError } from './errors.js';
import type { ServerStatus, Upstream } from './upstream.js';
import { UpstreamConnection, type UpstreamDeps, type UpstreamEventSink, type UpstreamRequestOptions, type UpstreamState } from './upstream-connection.js';
import type { InstanceSlot, UserInstances } from './user-instances.js';
import { withUserValues } from './user-placeholders.js';

/** What the catalog entry says before any instance has listed a per-user HTTP server's tools. */
export const NOT_LISTED_YET = 'acts for each user; lists appear once a user has connected';

/** Counted as instances start and stop (see `observability/metrics.ts`). */
export interface InstanceEvents {
  started(server: string): void;
  stopped(server: string): void;
  /** Stopped for idleness (also counted as stopped). */
  reaped(server: string): void;
}

export interface PerUserServerDeps {
  /** What every connection of the server is built with (its auth, events and change hook are added per instance). */
  connection: Omit<UpstreamDeps, 'onChange' | 'auth' | 'events'>;
  authFor?: AuthFor | undefined;
  /** The sink for one user's instance; `undefined`: the template's, which acts for nobody. */
  eventsFor: (user: string | undefined) => UpstreamEventSink;
  /** Shared by every per-user server: the caps count all of a user's instances. */
  instances: UserInstances<UpstreamConnection>;
  events: InstanceEvents;
  /** The entry's lists or state changed (the catalog is rebuilt). */
  onChange: () => void;
}

/** The lists of an upstream, as last reported by the instance the entry lists from. */
interface Listing {
  tools: readonly Tool[];
  prompts: readonly Prompt[];
  resources: readonly Resource[];
  resourceTemplates: readonly ResourceTemplateType[];
  capabilities: ServerCapabilities | undefined;
  instructions: string | undefined;
}

/**
 * A server with one instance per user: the catalog entry (`Upstream`) and the users'
 * instances behind it. Its lists come from a template instance started with no user (stdio:
 * placeholders empty), else from the first user instance that became ready (HTTP, where no
 * instance can start without a user's credentials), kept after that instance stops. What a
 * user's instance lists goes to every caller, so from one only what describes the server is
 * taken (tools, prompts, resource templates), never what may be that user's own data (its
 * concrete resources, its instructions). The entry
 * itself never sends a request: each goes to the caller's own instance (`forCaller`), which
 * is started on first use, never shared, and stopped when idle, when its user's sessions end,
 * or with the entry (once its calls have ended, when a new definition's entry replaces this one:
 * `supersede`).
 */
export class PerUserServer implements Upstream {
  readonly #deps: PerUserServerDeps;
  readonly #template: UpstreamConnection | undefined;
  /** Where the lists come from now: the template, or a user instance while no template has listed. */
  #lister: UpstreamConnection | undefined;
  #listing: Listing | undefined;
  /** Starts under way, by user: concurrent first calls of one user share one. */
  readonly #starting = new Map<string, Promise<Upstream>>();
  /** Each live instance's handle, by the connection it wraps. */
  readonly #handles = new WeakMap<UpstreamConnection, InstanceHandle>();
  /** Wakes a start waiting for its instance's first outcome (on each change, and when its slot is let go). */
  readonly #wakers = new Map<InstanceSlot<UpstreamConnection>, (letGo: boolean) => void>();
  /**
   * Who each slot's auth acts for: one object per slot, whose `principal` a later call of the
   * same user with a newer credential replaces, so that what reads it later (a token exchange
   * renewing its token) uses the caller's current token, not the first call's.
   */
  readonly #callers = new WeakMap<InstanceSlot<UpstreamConnection>, CallerIdentity>();
  /** Stops under way (idle reaps, sessions ended): `stop()` waits for them. */
  readonly #stopping = new Set<Promise<void>>();
  /**
   * This entry's own slots, from their reservation to their release. The books (`UserInstances`)
   * hold one slot per server name and user; an entry replaced by a new definition takes its
   * slots off them (`supersede`) but still stops them, and it never touches its successor's.
   * By user: a user's slot here is released before another is reserved for them (`forCaller`).
   */
  readonly #slots = new Map<string, InstanceSlot<UpstreamConnection>>();
  /** Set by `supersede`: a new definition's entry serves this server's users now. */
  #superseded = false;
  /** The listing was taken from the entry this one replaced (`carryListing`), not made by an instance of its own. */
  #carried = false;
  #stopped = false;
  #config: ServerConfig;

  constructor(
    readonly name: string,
    config: ServerConfig,
    deps: PerUserServerDeps,
  ) {
    this.#config = config;
    this.#deps = deps;
    if (config.transport === 'stdio') {
      this.#template = new UpstreamConnection(name, withUserValues(config, undefined), {
        ...deps.connection,
        events: deps.eventsFor(undefined),
        onChange: (connection) => this.#listerChanged(connection),
      });
    }
  }

  /** The server's definition; its catalog settings may change while it runs (`updateCatalogSettings`). */
  get config(): ServerConfig {
    return this.#config;
  }

  /**
   * Takes a definition that differs in catalog settings only (see `config/server-changes.ts`):
   * the template and the users' instances keep running. The instances keep the definition
   * they started with: nothing reads its catalog settings there (the catalog reads this entry's).
   */
  updateCatalogSettings(config: ServerConfig): void {
    this.#config = config;
    this.#template?.updateCatalogSettings(withUserValues(config, undefined));
  }

  /** Starts the template instance (stdio); an HTTP server starts nothing until a user calls. */
  start(): void {
    this.#template?.start();
  }

  get state(): UpstreamState {
    if (!this.config.enabled) return 'disabled';
    return this.#template?.state ?? 'ready';
  }

  get health(): UpstreamState {
    if (!this.config.enabled) return 'disabled';
    return this.#template?.health ?? 'ready';
  }

  get tools(): readonly Tool[] {
    return this.#listing?.tools ?? [];
  }

  get prompts(): readonly Prompt[] {
    return this.#listing?.prompts ?? [];
  }

  get resources(): readonly Resource[] {
    return this.#listing?.resources ?? [];
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.#listing?.resourceTemplates ?? [];
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#listing?.capabilities;
  }

  get instructions(): string | undefined {
    return this.#listing?.instructions;
  }

  get lastError(): string | undefined {
    if (this.#template) return this.#template.lastError;
    return this.#listing ? undefined : NOT_LISTED_YET;
  }

  status(): ServerStatus {
    const template = this.#template?.status();
    return {
      name: this.name,
      state: this.health,
      transport: this.config.transport,
      wire: template?.wire,
      description: this.config.description,
      tags: this.config.tags,
      toolCount: this.tools.length,
      lastError: this.lastError,
      connectedAt: template?.connectedAt,
      nextRetryAt: template?.nextRetryAt,
      pid: template?.pid,
      breaker: template?.breaker ?? 'closed',
      protocol: template?.protocol ?? this.#lister?.status().protocol,
      perUser: true,
      instances: this.#deps.instances.ofServer(this.name).filter((slot) => slot.instance).length,
    };
  }

  /** The entry acts for nobody: a request sent here would reach no user's instance, or the wrong one. */
  async request(method: string): Promise<Record<string, unknown>> {
    throw new UpstreamUnavailableError(this.name, `it acts for each user; ${method} must be sent to the caller's own instance`);
  }

  /**
   * The caller's own instance, started on first use with the caller's values and credentials,
   * and ready. Its auth is made ready before anything starts: an `UpstreamAuthError` (a user who
   * must authorise first, a refusal of the factory, or of the upstream at the handshake)
   * reaches the caller as it is. The auth's readiness and the handshake are each bounded by the
   * server's connect timeout.
   *
   * `signal` (the call's) ends only this caller's wait: the start goes on, since concurrent
   * calls of the same user share it and a caller who gave up usually retries; an instance
   * nobody comes back for is reaped when idle, or stops with its user's sessions.
   */
  async forCaller(caller: CallerIdentity, signal?: AbortSignal): Promise<Upstream> {
    if (this.#stopped || this.#superseded) throw new UpstreamUnavailableError(this.name, 'it was removed or changed');
    if (!this.config.enabled) throw new UpstreamUnavailableError(this.name, 'disabled');
    signal?.throwIfAborted();
    const user = caller.principal.id;
    const slot = this.#slotOf(user);
    if (slot) this.#renew(slot, caller.principal);
    const pending = this.#starting.get(user);
    if (pending) return untilAborted(pending, signal);
    const running = slot?.instance;
    const handle = running && this.#handles.get(running);
    if (slot && handle && usable(handle.connection) && !(slot.active === 0 && handle.outdatedFor(caller))) {
      this.#deps.instances.keep(slot);
      return handle;
    }
    const start = (async () => {
      // One that gave up reconnecting (or never came up), or runs with a credential that has
      // expired when the caller has a new one, is replaced by a fresh start.
      if (slot) await this.#stopSlot(slot);
      return this.#start(caller);
    })().finally(() => this.#starting.delete(user));
    this.#starting.set(user, start);
    // Every waiter gets the failure from its own wait; when they all gave up, only the log has it.
    start.catch((error: unknown) => this.#deps.connection.logger.debug({ err: error, server: this.name, user }, 'a user instance did not start'));
    return untilAborted(start, signal);
  }

  /** The user opened a session: their instance, stopping since their last session ended, is kept. */
  keep(user: string): void {
    const slot = this.#slotOf(user);
    if (slot && !this.#superseded) this.#deps.instances.keep(slot);
  }

  /**
   * No template, and no instance of its own has listed the server's tools yet: a user opening
   * a session starts one (`UpstreamPool.listThrough`), which lists them, or lists them afresh
   * over what the entry it replaced listed.
   */
  get unlisted(): boolean {
    return this.#template === undefined && (this.#listing === undefined || this.#carried);
  }

  /** Whether `user` has an instance of this entry (running, starting, or finishing its calls after `supersede`). */
  has(user: string): boolean {
    return this.#slotOf(user) !== undefined;
  }

  /** The user's instance if it runs now; none is started (for what only makes sense on a running one). */
  running(user: string): Upstream | undefined {
    const instance = this.#slotOf(user)?.instance;
    return instance && !this.#starting.has(user) ? this.#handles.get(instance) : undefined;
  }

  /** Stops the user's instance, now or (requests in flight) when they end; `stop()` waits for it either way. */
  retire(user: string): void {
    const slot = this.#slotOf(user);
    if (slot) this.#deps.instances.retireWhenIdle(slot, () => void this.#stopSlot(slot));
  }

  /** Stops the user's instance now. */
  stopUser(user: string): Promise<void> {
    const slot = this.#slotOf(user);
    return slot ? this.#stopSlot(slot) : Promise.resolve();
  }

  /**
   * An entry of the server's new definition serves its users from now on (`UpstreamPool`
   * switches once that one has listed). Each user's instance here leaves the books at once, so
   * that the user's next request starts an instance of the new definition (with the caps
   * counting that one, not this), and is stopped once the requests in flight on it have ended:
   * at once when it is idle. A start still under way here is given up, and its callers are
   * sent on to the new entry (`UpstreamPool.forCaller`). Nothing of this entry's ever serves
   * a request it did not already have: an instance belongs to one entry, found by its user
   * only there, so a user is never handed another's, nor one of the old definition again.
   */
  supersede(): void {
    this.#superseded = true;
    for (const slot of this.#slots.values()) {
      this.#deps.instances.detach(slot);
      this.#deps.instances.retireWhenIdle(slot, () => void this.#stopSlot(slot));
      // A start waiting for its instance's first outcome looks again, and finds it is no longer wanted.
      this.#wakers.get(slot)?.(true);
    }
  }

  /** Set once `supersede` was called. */
  get superseded(): boolean {
    return this.#superseded;
  }

  /** Resolves once no request is in flight on any of its users' instances, or `ms` have passed. */
  async drained(ms: number): Promise<void> {
    await Promise.all([...this.#slots.values()].map((slot) => slot.instance?.drained(ms) ?? Promise.resolve(true)));
  }

  /**
   * Lists what `previous` (the entry of the server's former definition) listed, until an
   * instance of this one lists: a server without a template (HTTP) has nothing to list before
   * a user's instance has started, and its tools must not leave the catalog meanwhile.
   */
  carryListing(previous: PerUserServer): void {
    if (this.#template || this.#listing || !previous.#listing) return;
    this.#listing = previous.#listing;
    this.#carried = true;
  }

  /** Stops the template and every instance of this entry; resolves when all are gone. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#template?.stop(), ...[...this.#slots.values()].map((slot) => this.#stopSlot(slot)), Promise.allSettled(this.#starting.values())]);
    await Promise.all(this.#stopping);
  }

  /** The user's slot of this entry (on the books, or taken off them by `supersede`), if any. */
  #slotOf(user: string): InstanceSlot<UpstreamConnection> | undefined {
    return this.#slots.get(user);
  }

  async #start(caller: CallerIdentity): Promise<Upstream> {
    const user = caller.principal.id;
    // Superseded or stopped while the instance it replaces stopped (`forCaller`): this entry
    // serves nobody now, and a slot reserved here would take the user's place on the books from
    // the new entry (whose own start would fail on it). `UpstreamPool.forCaller` sends the
    // caller on to the new entry.
    if (this.#stopped || this.#superseded) throw new UpstreamUnavailableError(this.name, 'it was removed or changed');
    const { slot, started } = this.#deps.instances.reserve(this.name, user, (idle) => this.#reap(idle));
    this.#slots.set(user, slot);
    const wanted = () => !this.#stopped && !this.#superseded && this.#deps.instances.find(this.name, user) === slot;
    const identity: CallerIdentity = { principal: caller.principal };
    this.#callers.set(slot, identity);
    try {
      const config = withUserValues(this.config, caller.principal);
      // The factory's refusal (an `UpstreamAuthError`) is thrown here: the slot is let go below.
      const auth = this.#deps.authFor?.(this.name, config, identity);
      try {
        // An authorization server that never answers must not hold the caller beyond the connect timeout.
        if (auth) await withDeadline(auth.ready(), connectTimeoutMsOf(config), () => new UpstreamUnavailableError(this.name, `its instance for ${user} did not start: no credentials within ${connectTimeoutMsOf(config) / 1000}s`));
        if (!wanted()) throw new UpstreamUnavailableError(this.name, `its instance for ${user} was stopped while it started`);
      } catch (error) {
        auth?.close();
        throw error;
      }
      const connection = new UpstreamConnection(this.name, config, {
        ...this.#deps.connection,
        auth,
        events: this.#deps.eventsFor(user),
        onChange: (changed) => {
          this.#wakers.get(slot)?.(false);
          this.#instanceChanged(changed);
        },
      });
      slot.instance = connection;
      this.#handles.set(connection, new InstanceHandle(this.config, connection, slot, this.#deps.instances, { values: fingerprint(config), expiresAt: caller.principal.expiresAt }));
      this.#deps.events.started(this.name);
      connection.start();
      await this.#firstOutcome(slot, connection);
      if (!wanted()) throw new UpstreamUnavailableError(this.name, `its instance for ${user} was stopped while it started`);
      if (connection.state !== 'ready') {
        // Refused at the handshake (a refresh the authorization server refused, say): the caller
        // gets that error, with the URL to authorise at when there is one.
        const refused = connection.authFailure;
        if (refused) throw refused;
        const reason = connection.state === 'connecting' ? `no answer within ${connection.connectTimeoutMs / 1000}s` : (connection.lastError ?? connection.state);
        throw new UpstreamUnavailableError(this.name, `its instance for ${user} did not start: ${reason}`);
      }
      return this.#handles.get(connection)!;
    } catch (error) {
      await this.#stopSlot(slot);
      throw error;
    } finally {
      started();
    }
  }

  /** Resolves once the first connection attempt has ended (ready or failed), the slot was let go, or the connect timeout passed. */
  #firstOutcome(slot: InstanceSlot<UpstreamConnection>, connection: UpstreamConnection): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, connection.connectTimeoutMs);
      timer.unref();
      const check = (letGo: boolean) => {
        if (letGo || connection.state !== 'connecting') done();
      };
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakers.set(slot, check);
      check(false);
    }).finally(() => this.#wakers.delete(slot));
  }

  #reap(slot: InstanceSlot<UpstreamConnection>): void {
    this.#deps.connection.logger.info({ server: this.name, user: slot.user }, 'user instance idle; stopping it');
    if (slot.instance) this.#deps.events.reaped(this.name);
    void this.#stopSlot(slot);
  }

  /** Releases the slot and stops its instance (once, however many ask). */
  #stopSlot(slot: InstanceSlot<UpstreamConnection>): Promise<void> {
    if (this.#slots.get(slot.user) === slot) this.#slots.delete(slot.user);
    if (!this.#deps.instances.release(slot)) return Promise.resolve();
    // A start waiting for this instance finds it let go at once, not at its connect timeout.
    this.#wakers.get(slot)?.(true);
    const connection = slot.instance;
    if (!connection) return Promise.resolve();
    if (connection === this.#lister) this.#lister = undefined;
    const stopping = connection
      .stop()
      .catch((error: unknown) => this.#deps.connection.logger.warn({ err: error, server: this.name, user: slot.user }, 'a user instance did not stop cleanly'))
      .finally(() => {
        this.#deps.events.stopped(this.name);
        this.#stopping.delete(stopping);
      });
    this.#stopping.add(stopping);
    return stopping;
  }

  /** A later call of the slot's user with a newer credential: the slot's auth reads that one from now on. */
  #renew(slot: InstanceSlot<UpstreamConnection>, presented: Principal): void {
    const identity = this.#callers.get(slot);
    if (identity && newerCredential(presented, identity.principal)) identity.principal = presented;
  }

  /** A user instance changed: the first one ready lists for the entry while neither the template nor another does. */
  #instanceChanged(connection: UpstreamConnection): void {
    if (this.#lister === undefined && (this.#template === undefined || this.#listing === undefined) && connection.state === 'ready') {
      this.#lister = connection;
    }
    if (connection === this.#lister) this.#listerChanged(connection);
  }

  /**
   * The template (or the listing instance) changed: its lists are the entry's, once it is ready.
   * A user's instance lists for everyone, so its concrete resources and its instructions (which
   * may name that user or hold their data) are left out: each user reaches their own resources
   * through the templates, on their own instance. The template acts for nobody: all of it is kept.
   */
  #listerChanged(connection: UpstreamConnection): void {
    if (this.#stopped) return;
    if (connection === this.#template && connection.state === 'ready') this.#lister = connection;
    if (connection === this.#lister && connection.state === 'ready') {
      const forNobody = connection === this.#template;
      this.#carried = false;
      this.#listing = {
        tools: connection.tools,
        prompts: connection.prompts,
        resources: forNobody ? connection.resources : [],
        resourceTemplates: connection.resourceTemplates,
        capabilities: connection.capabilities,
        instructions: forNobody ? connection.instructions : undefined,
      };
    }
    this.#deps.onChange();
  }
}

/** Keeps `upstream`, when it is a user's instance, from being reaped for idleness until the returned function is called. */
export function holdInstance(upstream: Upstream): () => void {
  return upstream instanceof InstanceHandle ? upstream.instances.hold(upstream.slot) : () => {};
}

/**
 * Whether `presented` (the same user's) carries a newer credential than `current`: one that
 * expires later, or another token with the same expiry (a rotated key without one). A user
 * presenting two valid tokens in turn keeps the one that lasts longer, instead of switching at
 * every call.
 */
export function newerCredential(presented: Principal, current: Principal): boolean {
  if (presented === current || presented.id !== current.id) return false;
  const next = presented.expiresAt ?? Number.POSITIVE_INFINITY;
  const held = current.expiresAt ?? Number.POSITIVE_INFINITY;
  if (next !== held) return next > held;
  return presented.token?.reveal() !== current.token?.reveal();
}

/** As `UpstreamConnection.connectTimeoutMs`: what a start may take, before the connection exists. */
export function connectTimeoutMsOf(config: ServerConfig): number {
  return (config.connectTimeout ?? Math.max(config.timeout, 10)) * 1000;
}

/** `work`, or its failure with `timeout()` once `ms` have passed. */
async function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `work`, unless `signal` aborts first: then its reason (as a cancelled upstream request fails), while `work` goes on. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A definition's fingerprint, to tell whether a user's values in it changed (the token is not kept a second time). */
function fingerprint(config: ServerConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('base64url');
}

/** Ready, or reconnecting on its own after a loss: kept. Misconfigured, or given up: started afresh. */
function usable(connection: UpstreamConnection): boolean {
  const { state } = connection;
  if (state === 'ready' || state === 'degraded' || state === 'connecting') return true;
  return state === 'down' && connection.status().nextRetryAt !== undefined;
}

/**
 * One user's instance as callers get it: the connection, with each request counted as use of
 * the instance (an instance serving a request is never reaped), and the server's definition
 * as configured (the user's values, a token among them, stay inside the connection).
 */
class InstanceHandle implements Upstream {
  constructor(
    readonly config: ServerConfig,
    readonly connection: UpstreamConnection,
    readonly slot: InstanceSlot<UpstreamConnection>,
    readonly instances: UserInstances<UpstreamConnection>,
    /** What the instance was started with: its definition's fingerprint, and when the credential in it expires. */
    readonly startedWith: { values: string; expiresAt: number | undefined },
  ) {}

  /**
   * Whether the instance runs with values (a `${user.token}`) that expired, and `caller`'s
   * differ. Only expiry counts: a user with two valid tokens at once does not make their
   * instance restart at every call.
   */
  outdatedFor(caller: CallerIdentity): boolean {
    const { expiresAt, values } = this.startedWith;
    return expiresAt !== undefined && expiresAt <= Date.now() && fingerprint(withUserValues(this.config, caller.principal)) !== values;
  }

  get name(): string {
    return this.connection.name;
  }

  get state(): UpstreamState {
    return this.connection.state;
  }

  get health(): UpstreamState {
    return this.connection.health;
  }

  get tools(): readonly Tool[] {
    return this.connection.tools;
  }

  get prompts(): readonly Prompt[] {
    return this.connection.prompts;
  }

  get resources(): readonly Resource[] {
    return this.connection.resources;
  }

  get resourceTemplates(): readonly ResourceTemplateType[] {
    return this.connection.resourceTemplates;
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.connection.capabilities;
  }

  get instructions(): string | undefined {
    return this.connection.instructions;
  }

  get lastError(): string | undefined {
    return this.connection.lastError;
  }

  status(): ServerStatus {
    return { ...this.connection.status(), perUser: true };
  }

  async request(method: string, params: Record<string, unknown> | undefined, options?: UpstreamRequestOptions, owner?: unknown): Promise<Record<string, unknown>> {
    const end = this.instances.use(this.slot);
    try {
      return await this.connection.request(method, params, options, owner);
    } finally {
      end();
    }
  }
}

import type { Logger } from 'pino';
import { isReplicated, type ServerConfig } from '../config/schema.js';
import { serverChange } from '../config/server-changes.js';
import type { ChildProcessGroups } from './child-processes.js';
import { bestEffort } from '../observability/best-effort.js';
import { InMemoryEraVerdicts, type EraVerdictStore } from './era-verdicts.js';
import { isPerUser, UpstreamAuthError, type AuthFor, type CallerIdentity, type UpstreamAuth } from './auth/upstream-auth.js';
import { UpstreamUnavailableError } from './errors.js';
import { connectTimeoutMsOf, holdInstance, PerUserServer, type InstanceEvents } from './per-user-server.js';
import { ReplicatedServer } from './replicated-server.js';
import { SingleOwnerServer, type OwnerLink } from './single-owner-server.js';
import type { ServerStatus, Upstream } from './upstream.js';
import { UpstreamConnection, type HealthPolicy, type ReconnectPolicy, type UpstreamEventSink, type UpstreamState } from './upstream-connection.js';
import { UserInstances, type InstanceLimits } from './user-instances.js';

export interface UpstreamPoolDeps {
  logger: Logger;
  events: UpstreamEventSink;
  groups: ChildProcessGroups;
  reconnect: ReconnectPolicy;
  health: HealthPolicy;
  onRestart?: (server: string) => void;
  /** Where each server's protocol era is remembered across reconnects (in memory when not given). */
  verdicts?: EraVerdictStore;
  /** How each connection authenticates to its upstream (none when not given). */
  authFor?: AuthFor;
  /**
   * Where one user's instance sends what its upstream says on its own (`undefined`: a
   * template's, which acts for nobody); `events` for all when not given.
   */
  eventsFor?: (user: string | undefined) => UpstreamEventSink;
  /** Per-user instances: idleness and caps (`gateway.upstreamIdentity.instances`). */
  instances?: InstanceLimits;
  /** Counts per-user instances starting, stopping and reaped. */
  instanceEvents?: InstanceEvents;
  /**
   * How the gateway processes sharing the state reach the one running a `processes: one` stdio
   * server; without it, such a server runs here as any other.
   */
  singleOwner?: OwnerLink;
}

/** One running per-user instance, as `GET /api/v1/sessions` lists it. */
export interface UserInstanceView {
  server: string;
  user: string;
  state: UpstreamState | 'starting';
  pid: number | undefined;
  startedAt: string;
  lastUsedAt: string;
}

/** What a changed server may be: one entry kind or another. */
type Entry = UpstreamConnection | PerUserServer | ReplicatedServer | SingleOwnerServer;

/** What `apply` did, by server name. */
export interface AppliedServers {
  added: string[];
  removed: string[];
  /** A connection setting changed: a new connection replaced the old one. */
  changed: string[];
  /** Only catalog settings changed (filters, overrides, metadata): the entry took them while running. */
  updated: string[];
}

const DEFAULT_INSTANCE_LIMITS: InstanceLimits = { idleSeconds: 600, maxPerUser: 10, maxTotal: 200 };
const NO_INSTANCE_EVENTS: InstanceEvents = { started: () => {}, stopped: () => {}, reaped: () => {} };

/**
 * Every configured upstream, keyed by server name. Applying a new set of server definitions
 * touches only what changed: unchanged servers keep their connection (and child process).
 * A server that acts for each user (see `isPerUser`) is a `PerUserServer`: its entry lists its
 * tools, and requests reach each caller's own instance through `forCaller`. A server with
 * `urls` is a `ReplicatedServer`, which balances each request over its replicas' connections.
 * A stdio server with `processes: one` is a `SingleOwnerServer`: one gateway process in the
 * deployment runs it, the others send it their requests.
 */
export class UpstreamPool {
  readonly #connections = new Map<string, Entry>();
  /**
   * Entries running beside those in `#connections` (see `#switch`): a changed server's new
   * connection while it opens, and its old one while its calls in flight end. Stopped with the pool.
   */
  readonly #beside = new Set<Entry>();
  /**
   * By server name, the stop of a replaced entry that cannot run beside its successor (see
   * `#switch`), until it has stopped: the next entry of that name starts only then.
   */
  readonly #retiring = new Map<string, Promise<void>>();
  /** Woken on every change of any entry, and when the pool stops: switches waiting for their new connection look again. */
  readonly #switchWaiters = new Set<() => void>();
  #stopped = false;
  readonly #deps: UpstreamPoolDeps & { verdicts: EraVerdictStore };
  readonly #listeners = new Set<() => void>();
  /** Every per-user instance, all servers together (the caps count across servers). */
  readonly #instances: UserInstances<UpstreamConnection>;
  #changeQueued = false;

  constructor(deps: UpstreamPoolDeps) {
    this.#deps = { ...deps, verdicts: deps.verdicts ?? new InMemoryEraVerdicts() };
    this.#instances = new UserInstances(deps.instances ?? DEFAULT_INSTANCE_LIMITS);
  }

  /** Called (coalesced, once per tick) when any upstream's state or tools change. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The server's entry: its connection, or (acting for each user) the entry that lists its tools and sends nothing. */
  get(name: string): Upstream | undefined {
    return this.#connections.get(name);
  }

  list(): Upstream[] {
    return [...this.#connections.values()];
  }

  statuses(): ServerStatus[] {
    return this.list().map((upstream) => upstream.status());
  }

  /**
   * Where a request for `caller` goes: a shared server's connection, or the caller's own
   * instance of a per-user server (started now when it has none, and ready). An
   * `UpstreamAuthError` (the caller must authorise first) and a cap's `LimitExceededError`
   * reach the caller as they are. `signal` (the call's) stops the wait for an instance that is
   * starting.
   */
  async forCaller(server: string, caller: CallerIdentity, signal?: AbortSignal): Promise<Upstream> {
    const entry = this.#connections.get(server);
    if (!entry) throw new UpstreamUnavailableError(server, 'it is not configured');
    return entry instanceof PerUserServer ? entry.forCaller(caller, signal) : entry;
  }

  /**
   * Keeps `upstream` (what `forCaller` gave), when it is a user's instance, from being stopped
   * for idleness until the returned function is called: a resource subscription on it is use.
   */
  hold(upstream: Upstream): () => void {
    return holdInstance(upstream);
  }

  /** Like `forCaller`, for what only makes sense on a running instance (an upstream task's status): none is started. */
  running(server: string, user: string): Upstream | undefined {
    const entry = this.#connections.get(server);
    return entry instanceof PerUserServer ? entry.running(user) : entry;
  }

  /**
   * A user opened a session: each per-user server they may see that has listed nothing yet (an
   * HTTP one, which has no template) is started for them in the background, so its tools reach
   * the catalog (and the sessions, as a list change) without anyone having to call one first.
   * A user who must authorise first, or is at a cap, just does not list it.
   */
  listThrough(caller: CallerIdentity, visible: (server: string) => boolean): void {
    for (const entry of this.#perUser()) {
      if (!entry.unlisted || !entry.config.enabled || !visible(entry.name)) continue;
      void entry.forCaller(caller).catch((error: unknown) => this.#deps.logger.debug({ err: error, server: entry.name }, 'a per-user server could not be listed through this user'));
    }
  }

  /** The running per-user instances. */
  instances(): UserInstanceView[] {
    return this.#instances
      .all()
      .filter((slot) => slot.instance)
      .map((slot) => {
        const status = slot.instance!.status();
        return {
          server: slot.server,
          user: slot.user,
          state: status.state === 'connecting' ? 'starting' : status.state,
          pid: status.pid,
          startedAt: new Date(slot.startedAt).toISOString(),
          lastUsedAt: new Date(slot.lastUsedAt).toISOString(),
        };
      });
  }

  /** The user opened a session: their instances, stopping since their last session ended, are kept. */
  sessionOpened(user: string): void {
    for (const entry of this.#perUser()) entry.keep(user);
  }

  /**
   * The user has no downstream session left: their instances stop (each once its requests in
   * flight end). A later request of theirs starts a fresh one.
   */
  sessionsEnded(user: string): void {
    for (const entry of this.#perUser()) entry.retire(user);
  }

  /** Stops `user`'s instance of `server` now (their authorisation was revoked, say); false when there was none. */
  async stopInstance(server: string, user: string): Promise<boolean> {
    const entry = this.#connections.get(server);
    if (!(entry instanceof PerUserServer) || !this.#instances.find(server, user)) return false;
    await entry.stopUser(user);
    return true;
  }

  /** Stops every instance of `user` now; resolves with how many there were. */
  async stopUser(user: string): Promise<number> {
    const count = this.#instances.ofUser(user).length;
    await Promise.all(this.#perUser().map((entry) => entry.stopUser(user)));
    return count;
  }

  /**
   * Makes the pool match `servers`: new servers start connecting (in parallel, without
   * waiting), removed ones are stopped. A server whose catalog settings alone changed (filters,
   * overrides, metadata: `config/server-changes.ts`) takes them while running. One whose
   * connection settings changed is switched to a new connection once that one is ready (see
   * `#switch`), so its tools stay listed and callable meanwhile. Resolves once removed and
   * replaced connections are closed. Calls are expected one at a time (the registry orders them).
   */
  async apply(servers: Readonly<Record<string, ServerConfig>>): Promise<AppliedServers> {
    const applied: AppliedServers = { added: [], removed: [], changed: [], updated: [] };
    const closing: Promise<void>[] = [];
    for (const [name, entry] of this.#connections) {
      const next = Object.hasOwn(servers, name) ? servers[name] : undefined;
      if (next === undefined) {
        applied.removed.push(name);
        this.#connections.delete(name);
        closing.push(entry.stop(), this.#forgetEra(name));
        continue;
      }
      const change = serverChange(entry.config, next);
      if (change === 'catalog') {
        entry.updateCatalogSettings(next);
        applied.updated.push(name);
      } else if (change === 'connection') {
        applied.changed.push(name);
        closing.push(this.#switch(name, entry, next));
      }
    }
    for (const [name, config] of Object.entries(servers)) {
      if (this.#connections.has(name)) continue;
      applied.added.push(name);
      this.#open(name, config);
    }
    if (applied.removed.length || applied.updated.length) this.#queueChange();
    await Promise.all(closing);
    return applied;
  }

  /** Closes and reopens one upstream (a fresh process for stdio), resetting its backoff. */
  async restart(name: string): Promise<void> {
    const current = this.#connections.get(name);
    if (!current) return;
    // Its one process is restarted where it runs; this entry stays.
    if (current instanceof SingleOwnerServer) return current.restartProcess();
    this.#connections.delete(name);
    await current.stop();
    this.#open(name, current.config);
    this.#queueChange();
  }

  /** Stops every upstream and user instance; resolves when all children have exited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#connections.values(), ...this.#beside];
    this.#connections.clear();
    this.#beside.clear();
    for (const wake of this.#switchWaiters) wake();
    await Promise.all([...all.map((connection) => connection.stop()), ...this.#retiring.values()]);
    this.#instances.close();
  }

  /** Resolves when no upstream is still in its first `connecting` phase, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    // The caller waits on nothing else (a CLI command): the timer keeps the process up meanwhile.
    return this.#until(() => !this.list().some((u) => u.state === 'connecting'), timeoutMs, { holdProcess: true });
  }

  /**
   * Replaces `old`, whose connection settings changed, by a connection made from `config`.
   * A shared server's new connection is opened beside the old one, which keeps serving until
   * the new one is ready (or failed its first attempt, or its connect timeout passed); the old
   * one is stopped once the requests in flight on it have ended (within its request timeout).
   * A per-user server (whose users' instances are kept by server name) and a `processes: one`
   * server (whose process holds a lease by server name) cannot run twice under one name: the
   * new entry takes the old one's place at once but starts only once the old one has stopped
   * (its process exited, its lease let go), its tools missing from the catalog until it lists them.
   */
  async #switch(name: string, old: Entry, config: ServerConfig): Promise<void> {
    const fresh = this.#create(name, config);
    if (!switchesGapless(old) || !switchesGapless(fresh)) {
      this.#connections.set(name, fresh);
      this.#queueChange();
      const stopped = Promise.all([old.stop(), this.#forgetEra(name)]);
      const retired: Promise<void> = stopped.then(
        () => this.#retired(name, retired),
        () => this.#retired(name, retired),
      );
      this.#retiring.set(name, retired);
      this.#startAlone(name, fresh);
      try {
        await stopped;
      } finally {
        // Resolves after the new entry's start (queued on it first).
        await retired;
      }
      return;
    }
    // The new definition may be another server (a new URL or command): its era is found afresh.
    await this.#forgetEra(name);
    // Stopped meanwhile: the new connection never started, but holds its auth.
    if (this.#stopped) return fresh.stop();
    this.#beside.add(fresh);
    fresh.start();
    await this.#firstOutcome(fresh, connectTimeoutMsOf(config));
    this.#beside.delete(fresh);
    // The pool stopped meanwhile, and with it both connections.
    if (this.#stopped) return;
    if (this.#connections.get(name) !== old) {
      // Restarted while the new connection was opening: it is not wanted.
      await fresh.stop();
      return;
    }
    this.#connections.set(name, fresh);
    this.#beside.add(old);
    this.#queueChange();
    await old.drained(old.config.timeout * 1000);
    // Unless the pool stopped it meanwhile.
    if (this.#beside.delete(old)) await old.stop();
  }

  /** Resolves once `entry` is no longer connecting for the first time, the pool stops, or `ms` pass. */
  #firstOutcome(entry: Entry, ms: number): Promise<void> {
    return this.#until(() => entry.state !== 'connecting', ms);
  }

  /** Resolves once `condition` holds (looked at on every change of an entry), the pool stops, or `ms` pass. */
  #until(condition: () => boolean, ms: number, { holdProcess = false } = {}): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => {
        if (condition() || this.#stopped) done();
      };
      const timer = setTimeout(done, ms);
      if (!holdProcess) timer.unref();
      const waiters = this.#switchWaiters;
      function done(): void {
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      }
      waiters.add(check);
      check();
    });
  }

  #forgetEra(name: string): Promise<void> {
    return bestEffort(() => this.#deps.verdicts.delete(name), this.#deps.logger, `forget the protocol era of "${name}"`, 'warn');
  }

  #open(name: string, config: ServerConfig): void {
    const entry = this.#create(name, config);
    this.#connections.set(name, entry);
    this.#startAlone(name, entry);
  }

  /** Starts `entry`, the one under `name`, now or once the entry it replaced has stopped. */
  #startAlone(name: string, entry: Entry): void {
    const retiring = this.#retiring.get(name);
    if (!retiring) {
      entry.start();
      return;
    }
    void retiring.then(() => {
      // Replaced, removed or stopped with the pool while it waited: it never starts.
      if (!this.#stopped && this.#connections.get(name) === entry) this.#startAlone(name, entry);
    });
  }

  #retired(name: string, retiring: Promise<void>): void {
    if (this.#retiring.get(name) === retiring) this.#retiring.delete(name);
  }

  /** The entry `config` makes (not started): replicas, one process for the deployment, one instance per user, or one connection. */
  #create(name: string, config: ServerConfig): Entry {
    if (isReplicated(config)) {
      // One connection per replica, each authenticated as a server with that one URL would be.
      return new ReplicatedServer(name, config, { connection: this.#deps, authFor: (definition) => this.#sharedAuth(name, definition), onChange: () => this.#queueChange() });
    }
    const link = this.#deps.singleOwner;
    if (config.transport === 'stdio' && config.processes === 'one' && link) {
      const single: SingleOwnerServer = new SingleOwnerServer(name, config, {
        link,
        // The entry's definition as it is when the process starts (its catalog settings may have changed since).
        connect: (onChange) => new UpstreamConnection(name, single.config, { ...this.#deps, events: link.events, auth: this.#sharedAuth(name, config), onChange }),
        onChange: () => this.#queueChange(),
        logger: this.#deps.logger,
      });
      return single;
    }
    if (isPerUser(config)) {
      return new PerUserServer(name, config, {
        connection: this.#deps,
        authFor: this.#deps.authFor,
        eventsFor: this.#deps.eventsFor ?? (() => this.#deps.events),
        instances: this.#instances,
        events: this.#deps.instanceEvents ?? NO_INSTANCE_EVENTS,
        onChange: () => this.#queueChange(),
      });
    }
    return new UpstreamConnection(name, config, { ...this.#deps, auth: this.#sharedAuth(name, config), onChange: () => this.#queueChange() });
  }

  /**
   * A shared connection's auth. The factory's refusal (`UpstreamAuthError`) is the connection's
   * to report (misconfigured, and to each request), not a failure of the whole `apply`.
   */
  #sharedAuth(name: string, config: ServerConfig): UpstreamAuth | undefined {
    try {
      return this.#deps.authFor?.(name, config);
    } catch (error) {
      if (!(error instanceof UpstreamAuthError)) throw error;
      return refusedAuth(error);
    }
  }

  #perUser(): PerUserServer[] {
    return [...this.#connections.values()].filter((entry) => entry instanceof PerUserServer);
  }

  #queueChange(): void {
    if (this.#changeQueued) return;
    this.#changeQueued = true;
    queueMicrotask(() => {
      this.#changeQueued = false;
      for (const wake of this.#switchWaiters) wake();
      for (const listener of this.#listeners) listener();
    });
  }
}

/** Whether a changed server of this kind can have its new connection opened beside the old one (see `#switch`). */
function switchesGapless(entry: Entry): entry is UpstreamConnection | ReplicatedServer {
  return entry instanceof UpstreamConnection || entry instanceof ReplicatedServer;
}

/** An auth that refuses with `error` whenever it is asked. */
function refusedAuth(error: UpstreamAuthError): UpstreamAuth {
  return {
    ready: () => Promise.reject(error),
    credentials: () => Promise.reject(error),
    onRejected: async () => false,
    close: () => {},
  };
}

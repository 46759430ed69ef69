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
  /** The connections' clock (breakers, reconnect schedules, era memory): `Date.now` when not given. */
  now?: () => number;
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
/** An entry whose successor can come up beside it (see `switchesBeside`). */
type BesideEntry = Exclude<Entry, SingleOwnerServer>;

/**
 * A changed server's switch to its new definition while the new entry comes up beside the old
 * one (see `#switch`): a later change, a removal or a restart of the server calls it off.
 */
interface PendingSwitch {
  /** The definition switched to; a later change of its catalog settings alone is taken here. */
  config: ServerConfig;
  readonly fresh: Entry;
  calledOff: boolean;
}

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
   * `#switch`), and of any such entry it had replaced in turn, until all have stopped: no later
   * entry of that name starts before, however many changes come meanwhile.
   */
  readonly #retiring = new Map<string, Promise<void>>();
  /** Woken on every change of any entry, when a switch is called off, and when the pool stops: switches waiting for their new connection look again. */
  readonly #switchWaiters = new Set<() => void>();
  /** By server name, the switch waiting for its new entry to come up (see `#switch`). */
  readonly #switches = new Map<string, PendingSwitch>();
  /** Switches, and the ends of the entries they replaced, still under way: `stop` and `switched` wait for them. */
  readonly #underWay = new Set<Promise<void>>();
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
    if (!(entry instanceof PerUserServer)) return entry;
    try {
      return await entry.forCaller(caller, signal);
    } catch (error) {
      // Switched to a new definition while the caller's instance started: the caller's request
      // goes to the new entry (an instance of the new definition), not to a failure.
      const now = this.#connections.get(server);
      if (!entry.superseded || !now || now === entry) throw error;
      return now instanceof PerUserServer ? now.forCaller(caller, signal) : now;
    }
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
    for (const entry of this.#perUser({ replaced: true })) entry.retire(user);
  }

  /**
   * Stops `user`'s instance of `server` now (their authorisation was revoked, say), and one of a
   * replaced definition still finishing its calls; false when there was none.
   */
  async stopInstance(server: string, user: string): Promise<boolean> {
    const holding = this.#perUser({ replaced: true }).filter((entry) => entry.name === server && entry.has(user));
    await Promise.all(holding.map((entry) => entry.stopUser(user)));
    return holding.length > 0;
  }

  /** Stops every instance of `user` now, those of replaced definitions included; resolves with how many there were. */
  async stopUser(user: string): Promise<number> {
    const holding = this.#perUser({ replaced: true }).filter((entry) => entry.has(user));
    await Promise.all(holding.map((entry) => entry.stopUser(user)));
    return holding.length;
  }

  /**
   * Makes the pool match `servers`: new servers start connecting (in parallel, without
   * waiting), removed ones are stopped. A server whose catalog settings alone changed (filters,
   * overrides, metadata: `config/server-changes.ts`) takes them while running. One whose
   * connection settings changed is switched to its new definition in the background (see
   * `#switch`), its tools listed and callable meanwhile: resolves once removed connections are
   * closed, without waiting for a switch (`switched` does), so that the registry's next change
   * is not held up by a server slow to come up. A change to a server whose switch is under way
   * is compared with what it is becoming: it calls that switch off and starts its own, or (its
   * catalog settings alone differing) is taken by the entry coming up. Calls are expected one at
   * a time (the registry orders them).
   */
  async apply(servers: Readonly<Record<string, ServerConfig>>): Promise<AppliedServers> {
    const applied: AppliedServers = { added: [], removed: [], changed: [], updated: [] };
    const closing: Promise<void>[] = [];
    for (const [name, entry] of this.#connections) {
      const next = Object.hasOwn(servers, name) ? servers[name] : undefined;
      if (next === undefined) {
        applied.removed.push(name);
        this.#connections.delete(name);
        this.#callOff(name);
        closing.push(entry.stop(), this.#forgetEra(name));
        continue;
      }
      const pending = this.#switches.get(name);
      const change = serverChange(pending?.config ?? entry.config, next);
      if (change === 'unchanged') continue;
      if (change === 'catalog') {
        if (pending) pending.config = next;
        (pending?.fresh ?? entry).updateCatalogSettings(next);
        applied.updated.push(name);
        continue;
      }
      applied.changed.push(name);
      this.#callOff(name);
      // Compared with what runs: a change back to it needs no new entry.
      const fromRunning = serverChange(entry.config, next);
      if (fromRunning === 'connection') this.#switch(name, entry, next);
      else if (fromRunning === 'catalog') {
        entry.updateCatalogSettings(next);
        this.#queueChange();
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

  /**
   * Closes and reopens one upstream (a fresh process for stdio), resetting its backoff. A
   * switch under way is called off: the server reopens with the definition it was switching to.
   */
  async restart(name: string): Promise<void> {
    const current = this.#connections.get(name);
    if (!current) return;
    // Its one process is restarted where it runs; this entry stays.
    if (current instanceof SingleOwnerServer) return current.restartProcess();
    const config = this.#switches.get(name)?.config ?? current.config;
    this.#callOff(name);
    this.#connections.delete(name);
    await current.stop();
    this.#open(name, config);
    this.#queueChange();
  }

  /** Resolves once no switch to a new definition is under way, the ends of the entries they replaced included. */
  async switched(): Promise<void> {
    while (this.#underWay.size > 0) await Promise.all(this.#underWay);
  }

  /** Stops every upstream and user instance; resolves when all children have exited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#connections.values(), ...this.#beside];
    this.#connections.clear();
    this.#beside.clear();
    for (const wake of this.#switchWaiters) wake();
    await Promise.all([...all.map((connection) => connection.stop()), ...this.#retiring.values()]);
    await this.switched();
    this.#instances.close();
  }

  /** Resolves when no upstream is still in its first `connecting` phase, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    // The caller waits on nothing else (a CLI command): the timer keeps the process up meanwhile.
    return this.#until(() => !this.list().some((u) => u.state === 'connecting'), timeoutMs, { holdProcess: true });
  }

  /**
   * Replaces `old`, whose connection settings changed, by an entry made from `config`, in the
   * background (tracked for `switched` and `stop`), each kind as closely without a gap as it
   * allows:
   *
   * - A shared server, one with `urls` and a per-user server: the new entry comes up beside the
   *   old one, which keeps serving until the new one is ready (or failed its first attempt, or
   *   its connect timeout passed; a per-user HTTP server, with no template, at once, listing
   *   what the old one listed until an instance of its own lists). The old one is stopped once
   *   the requests in flight on it have ended (within its request timeout). A per-user server's
   *   users move over one by one: each instance of the old definition leaves the books at the
   *   switch, finishes its calls, and stops; its user's next call starts one of the new (see
   *   `PerUserServer.supersede`). No user ever shares an instance in between: instances are
   *   found by user within one entry only.
   * - A `processes: one` server takes over the old entry's lease and lists at once, and runs its
   *   process once the old one's calls have ended and it has exited: never two at once, by the
   *   nature of such a server; calls meanwhile wait for the new process (see
   *   `SingleOwnerServer.succeed`).
   * - Otherwise (`processes: one` turned on or off, or an entry that never took part in the
   *   lease): the new entry takes the old one's place at once and starts once the old one has
   *   stopped, its tools missing from the catalog until it lists them.
   */
  #switch(name: string, old: Entry, config: ServerConfig): void {
    const fresh = this.#create(name, config);
    if (old instanceof SingleOwnerServer && fresh instanceof SingleOwnerServer && fresh.canSucceed(old)) {
      this.#connections.set(name, fresh);
      this.#beside.add(old);
      const retired = fresh.succeed(old, old.config.timeout * 1000);
      fresh.start();
      this.#queueChange();
      // The new definition may be another server (a new command): its era is found afresh.
      this.#track(Promise.all([retired, this.#forgetEra(name)]).finally(() => this.#beside.delete(old)));
      return;
    }
    if (!switchesBeside(old) || !switchesBeside(fresh)) {
      this.#track(this.#replaceAtOnce(name, old, fresh));
      return;
    }
    const pending: PendingSwitch = { config, fresh, calledOff: false };
    this.#switches.set(name, pending);
    this.#track(this.#switchBeside(name, old, pending));
  }

  /** The switch of an entry that can run beside its successor (see `#switch`). */
  async #switchBeside(name: string, old: BesideEntry, pending: PendingSwitch): Promise<void> {
    const { fresh } = pending;
    // The new definition may be another server (a new URL or command): its era is found afresh.
    await this.#forgetEra(name);
    // An entry replaced at once before `old` (see `#replaceAtOnce`) may still be stopping: no
    // entry of this name starts before it has, as `old` itself did not (a later change calls
    // this switch off before it can set another).
    await this.#retiring.get(name);
    // Stopped or called off meanwhile: the new entry never started, but holds its auth.
    if (this.#stopped || pending.calledOff) return fresh.stop();
    this.#beside.add(fresh);
    fresh.start();
    await this.#until(() => fresh.state !== 'connecting' || pending.calledOff, connectTimeoutMsOf(pending.config));
    this.#beside.delete(fresh);
    if (this.#switches.get(name) === pending) this.#switches.delete(name);
    // The pool stopped meanwhile, and with it both entries.
    if (this.#stopped) return;
    if (pending.calledOff || this.#connections.get(name) !== old) {
      // A later change, a removal or a restart called it off: the new entry is not wanted.
      await fresh.stop();
      return;
    }
    this.#connections.set(name, fresh);
    if (old instanceof PerUserServer) {
      if (fresh instanceof PerUserServer) fresh.carryListing(old);
      old.supersede();
    }
    this.#beside.add(old);
    this.#queueChange();
    await old.drained(old.config.timeout * 1000);
    // Unless the pool stopped it meanwhile.
    if (this.#beside.delete(old)) await old.stop();
  }

  /** The switch of an entry that cannot run beside its successor (see `#switch`): the successor starts once it has stopped. */
  async #replaceAtOnce(name: string, old: Entry, fresh: Entry): Promise<void> {
    this.#connections.set(name, fresh);
    this.#queueChange();
    // `old` may itself have replaced an entry still stopping (a change made while that one's
    // process exits, `old` not started yet): this stop takes that one's in, so that `fresh`
    // waits for both, not only for `old`, which stops at once.
    const stopped = Promise.all([old.stop(), this.#forgetEra(name), this.#retiring.get(name)]);
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
  }

  /** Calls off the switch of `name` waiting for its new entry, if any (see `#switchBeside`). */
  #callOff(name: string): void {
    const pending = this.#switches.get(name);
    if (!pending) return;
    this.#switches.delete(name);
    pending.calledOff = true;
    for (const wake of this.#switchWaiters) wake();
  }

  /** Keeps `work` (a switch) for `switched` and `stop` to wait for; its failure is logged, as no caller waits for it. */
  #track(work: Promise<unknown>): void {
    const tracked: Promise<void> = work
      .then(
        () => {},
        (error: unknown) => this.#deps.logger.warn({ err: error }, 'a server switch to its new definition failed'),
      )
      .finally(() => this.#underWay.delete(tracked));
    this.#underWay.add(tracked);
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

  /** The per-user entries serving now, and (`replaced`) those of former definitions whose instances finish their calls. */
  #perUser({ replaced = false } = {}): PerUserServer[] {
    const entries = replaced ? [...this.#connections.values(), ...this.#beside] : [...this.#connections.values()];
    return entries.filter((entry) => entry instanceof PerUserServer);
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

/**
 * Whether a changed server of this kind can have its new entry come up beside the old one (see
 * `#switch`): all but a `processes: one` server, which must never run twice.
 */
function switchesBeside(entry: Entry): entry is BesideEntry {
  return !(entry instanceof SingleOwnerServer);
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

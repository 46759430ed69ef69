import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { isReplicated, type ServerConfig } from '../config/schema.js';
import type { ChildProcessGroups } from './child-processes.js';
import { bestEffort } from '../observability/best-effort.js';
import { InMemoryEraVerdicts, type EraVerdictStore } from './era-verdicts.js';
import { isPerUser, UpstreamAuthError, type AuthFor, type CallerIdentity, type UpstreamAuth } from './auth/upstream-auth.js';
import { UpstreamUnavailableError } from './errors.js';
import { holdInstance, PerUserServer, type InstanceEvents } from './per-user-server.js';
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
  readonly #connections = new Map<string, UpstreamConnection | PerUserServer | ReplicatedServer | SingleOwnerServer>();
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
   * waiting), removed ones are stopped, changed ones are replaced. Resolves once removed
   * and replaced connections are closed.
   */
  async apply(servers: Readonly<Record<string, ServerConfig>>): Promise<{ added: string[]; removed: string[]; changed: string[] }> {
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    const closing: Promise<void>[] = [];
    for (const [name, connection] of this.#connections) {
      const next = servers[name];
      if (next === undefined) removed.push(name);
      else if (!isDeepStrictEqual(next, connection.config)) changed.push(name);
      else continue;
      this.#connections.delete(name);
      closing.push(connection.stop());
      // A changed definition may be another server (a new URL or command): find its era afresh.
      closing.push(bestEffort(() => this.#deps.verdicts.delete(name), this.#deps.logger, `forget the protocol era of "${name}"`, 'warn'));
    }
    for (const [name, config] of Object.entries(servers)) {
      if (this.#connections.has(name)) continue;
      if (!changed.includes(name)) added.push(name);
      this.#open(name, config);
    }
    if (removed.length || changed.length) this.#queueChange();
    await Promise.all(closing);
    return { added, removed, changed };
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
    const all = [...this.#connections.values()];
    this.#connections.clear();
    await Promise.all(all.map((connection) => connection.stop()));
    this.#instances.close();
  }

  /** Resolves when no upstream is still in its first `connecting` phase, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.list().some((u) => u.state === 'connecting')) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  #open(name: string, config: ServerConfig): void {
    if (isReplicated(config)) {
      // One connection per replica, each authenticated as a server with that one URL would be.
      const replicated = new ReplicatedServer(name, config, { connection: this.#deps, authFor: (definition) => this.#sharedAuth(name, definition), onChange: () => this.#queueChange() });
      this.#connections.set(name, replicated);
      replicated.start();
      return;
    }
    const link = this.#deps.singleOwner;
    if (config.transport === 'stdio' && config.processes === 'one' && link) {
      const single = new SingleOwnerServer(name, config, {
        link,
        connect: (onChange) => new UpstreamConnection(name, config, { ...this.#deps, events: link.events, auth: this.#sharedAuth(name, config), onChange }),
        onChange: () => this.#queueChange(),
        logger: this.#deps.logger,
      });
      this.#connections.set(name, single);
      single.start();
      return;
    }
    const connection = isPerUser(config)
      ? new PerUserServer(name, config, {
          connection: this.#deps,
          authFor: this.#deps.authFor,
          eventsFor: this.#deps.eventsFor ?? (() => this.#deps.events),
          instances: this.#instances,
          events: this.#deps.instanceEvents ?? NO_INSTANCE_EVENTS,
          onChange: () => this.#queueChange(),
        })
      : new UpstreamConnection(name, config, { ...this.#deps, auth: this.#sharedAuth(name, config), onChange: () => this.#queueChange() });
    this.#connections.set(name, connection);
    connection.start();
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
      for (const listener of this.#listeners) listener();
    });
  }
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

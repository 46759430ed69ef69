import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/schema.js';
import type { ChildProcessGroups } from './child-processes.js';
import { bestEffort } from '../observability/best-effort.js';
import { InMemoryEraVerdicts, type EraVerdictStore } from './era-verdicts.js';
import type { AuthFor } from './auth/upstream-auth.js';
import { UpstreamConnection, type HealthPolicy, type ReconnectPolicy, type UpstreamEventSink, type UpstreamStatus } from './upstream-connection.js';

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
}

/**
 * Every configured upstream, keyed by server name. Applying a new set of server definitions
 * touches only what changed: unchanged servers keep their connection (and child process).
 */
export class UpstreamPool {
  readonly #connections = new Map<string, UpstreamConnection>();
  readonly #deps: UpstreamPoolDeps & { verdicts: EraVerdictStore };
  readonly #listeners = new Set<() => void>();
  #changeQueued = false;

  constructor(deps: UpstreamPoolDeps) {
    this.#deps = { ...deps, verdicts: deps.verdicts ?? new InMemoryEraVerdicts() };
  }

  /** Called (coalesced, once per tick) when any upstream's state or tools change. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get(name: string): UpstreamConnection | undefined {
    return this.#connections.get(name);
  }

  list(): UpstreamConnection[] {
    return [...this.#connections.values()];
  }

  statuses(): UpstreamStatus[] {
    return this.list().map((upstream) => upstream.status());
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
    this.#connections.delete(name);
    await current.stop();
    this.#open(name, current.config);
    this.#queueChange();
  }

  /** Stops every upstream; resolves when all children have exited. */
  async stop(): Promise<void> {
    const all = this.list();
    this.#connections.clear();
    await Promise.all(all.map((connection) => connection.stop()));
  }

  /** Resolves when no upstream is still in its first `connecting` phase, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.list().some((u) => u.state === 'connecting')) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  #open(name: string, config: ServerConfig): void {
    const connection = new UpstreamConnection(name, config, { ...this.#deps, auth: this.#deps.authFor?.(name, config), onChange: () => this.#queueChange() });
    this.#connections.set(name, connection);
    connection.start();
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

import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { ServerConfigSchema, type ServerConfig } from '../config/schema.js';
import type { ServerRepository } from '../store/server-repository.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { RegistryError } from './errors.js';

export type ServerSource = 'config' | 'api';

/** A change made through this registry that the other replicas must apply too. */
export interface ServerChange {
  server: string;
  /** The server's stored definition changed (created, replaced, patched, deleted), or it was restarted. */
  kind: 'stored' | 'restart';
}

export interface ServerRegistryDeps {
  upstreams: UpstreamPool;
  /** Without a repository, servers come from the config file only. */
  repository?: ServerRepository | undefined;
  logger: Logger;
  /** Stdio servers (a command the gateway runs) may be registered through the API. */
  allowStdio: boolean;
}

/** The setting named in refusals, so an operator knows what to change. */
const ALLOW_STDIO_SETTING = 'gateway.api.allowStdio';

/**
 * The set of upstream servers: those of the config file (read-only here, reloaded when the
 * file changes) and those registered at run time (stored in the database). A config server
 * wins a name; every change is applied to the pool as a difference, so untouched servers keep
 * their connections.
 */
export class ServerRegistry {
  readonly #deps: ServerRegistryDeps;
  #configServers: Record<string, ServerConfig> = {};
  #apiServers: Record<string, ServerConfig> = {};
  /** Changes are applied one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  /** A re-read of the stored servers waiting in the queue: later requests join it (it reads after they were made). */
  #reloadQueued: Promise<void> | undefined;
  /** Stored definitions already reported as invalid, so a periodic re-read does not repeat the error. */
  readonly #reportedInvalid = new Set<string>();
  readonly #changeListeners = new Set<(change: ServerChange) => void>();
  #closed = false;

  constructor(deps: ServerRegistryDeps) {
    this.#deps = deps;
  }

  /** Loads the stored servers and applies everything. */
  start(configServers: Readonly<Record<string, ServerConfig>>): Promise<void> {
    return this.#serial(async () => {
      this.#configServers = { ...configServers };
      this.#apiServers = await this.#readStored();
      await this.#apply();
    });
  }

  /**
   * Calls `listener` after each change made through this registry (the API) that other
   * replicas must apply: a stored definition written or deleted, a restart. Changes applied
   * through `reloadStored` or `restartHeard` are not reported, and neither are config file
   * changes (every replica reads its own file). Returns the unsubscribe function.
   */
  onChanged(listener: (change: ServerChange) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Reads the stored servers again (another replica changed them, or a periodic check) and
   * applies the difference: new ones connect, deleted ones stop, changed ones reconnect.
   * Ordered with the changes made here; requests made while one waits join it.
   */
  reloadStored(): Promise<void> {
    if (!this.#deps.repository) return Promise.resolve();
    this.#reloadQueued ??= this.#serial(async () => {
      this.#reloadQueued = undefined;
      if (this.#closed) return;
      this.#apiServers = await this.#readStored();
      await this.#apply();
    });
    return this.#reloadQueued;
  }

  /** Restarts the server's connection (its process) here, and reports it so every replica does. */
  restart(name: string): Promise<void> {
    return this.#serial(async () => {
      await this.#deps.upstreams.restart(name);
      this.#changed({ server: name, kind: 'restart' });
    });
  }

  /** Another replica restarted `name`: restart it here too, reporting nothing. */
  restartHeard(name: string): Promise<void> {
    return this.#serial(async () => {
      if (!this.#closed) await this.#deps.upstreams.restart(name);
    });
  }

  /** Ignores changes heard from now on and waits for the one being applied (the pool is about to stop). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
  }

  sourceOf(name: string): ServerSource | undefined {
    if (name in this.#configServers) return 'config';
    if (name in this.#apiServers) return 'api';
    return undefined;
  }

  definition(name: string): ServerConfig | undefined {
    return this.#configServers[name] ?? this.#apiServers[name];
  }

  /** Every server by name, config servers winning. */
  all(): Record<string, ServerConfig> {
    return { ...this.#apiServers, ...this.#configServers };
  }

  /** The config file changed: apply its servers (only the differences reconnect). */
  setConfigServers(servers: Readonly<Record<string, ServerConfig>>): Promise<void> {
    return this.#serial(async () => {
      this.#configServers = { ...servers };
      await this.#apply();
    });
  }

  create(name: string, input: unknown): Promise<ServerConfig> {
    return this.#serial(async () => {
      const definition = this.#validate(input);
      if (this.sourceOf(name) === 'config') throw new RegistryError(409, 'conflict', `server "${name}" is defined in the config file`);
      const repository = this.#repository();
      if (!(await repository.insert(name, definition))) throw new RegistryError(409, 'conflict', `server "${name}" already exists`);
      this.#apiServers[name] = definition;
      await this.#applyStored(name);
      return definition;
    });
  }

  replace(name: string, input: unknown): Promise<ServerConfig> {
    return this.#serial(async () => {
      this.#writable(name);
      const definition = this.#validate(input);
      await this.#update(name, definition);
      this.#apiServers[name] = definition;
      await this.#applyStored(name);
      return definition;
    });
  }

  /** Merges `changes` (top-level keys) into the stored definition. */
  patch(name: string, changes: unknown): Promise<ServerConfig> {
    return this.#serial(async () => {
      const current = this.#writable(name);
      if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) {
        throw new RegistryError(400, 'invalid_body', 'the body must be a JSON object');
      }
      const definition = this.#validate({ ...current, ...changes });
      await this.#update(name, definition);
      this.#apiServers[name] = definition;
      await this.#applyStored(name);
      return definition;
    });
  }

  remove(name: string): Promise<void> {
    return this.#serial(async () => {
      this.#writable(name);
      await this.#repository().delete(name);
      delete this.#apiServers[name];
      await this.#applyStored(name);
    });
  }

  /**
   * Stores a changed definition. A server another replica deleted (whose news has not arrived)
   * is not there to change: it stops here too, and the change is refused as for any unknown name.
   */
  async #update(name: string, definition: ServerConfig): Promise<void> {
    if (await this.#repository().update(name, definition)) return;
    delete this.#apiServers[name];
    await this.#apply();
    throw notFound(name);
  }

  #writable(name: string): ServerConfig {
    const source = this.sourceOf(name);
    if (source === undefined) throw notFound(name);
    if (source === 'config') throw new RegistryError(409, 'read_only', `server "${name}" is defined in the config file and cannot be changed through the API`);
    return this.#apiServers[name]!;
  }

  /** A definition from the API: valid, and a stdio server only where the config allows it. */
  #validate(input: unknown): ServerConfig {
    const definition = validate(input);
    if (definition.transport === 'stdio' && !this.#deps.allowStdio) {
      throw new RegistryError(
        403,
        'stdio_not_allowed',
        `registering stdio servers through the API is off (it makes the gateway run a command); set ${ALLOW_STDIO_SETTING}: true in the config file to allow it, or add the server to the config file`,
      );
    }
    return definition;
  }

  #repository(): ServerRepository {
    if (!this.#deps.repository) throw new RegistryError(503, 'no_database', 'servers can be registered only when a database is configured');
    return this.#deps.repository;
  }

  /** The stored servers as this gateway runs them (stdio ones kept disabled unless allowed); invalid ones left out. */
  async #readStored(): Promise<Record<string, ServerConfig>> {
    const stored = (await this.#deps.repository?.list()) ?? [];
    const servers: Record<string, ServerConfig> = {};
    const invalid = new Set<string>();
    for (const { name, definition } of stored) {
      const parsed = ServerConfigSchema.safeParse(definition);
      if (parsed.success && parsed.data.transport === 'stdio' && !this.#deps.allowStdio) {
        // Stored while the setting was on (or before it existed): kept, listed and deletable, never run.
        const kept = { ...parsed.data, enabled: false };
        if (!isDeepStrictEqual(this.#apiServers[name], kept)) this.#deps.logger.warn({ server: name }, `stored stdio server not started: ${ALLOW_STDIO_SETTING} is false`);
        servers[name] = kept;
      } else if (parsed.success) servers[name] = parsed.data;
      else {
        invalid.add(name);
        if (!this.#reportedInvalid.has(name)) this.#deps.logger.error({ server: name, issues: parsed.error.issues }, 'stored server definition is invalid; skipped');
      }
    }
    this.#reportedInvalid.clear();
    for (const name of invalid) this.#reportedInvalid.add(name);
    return servers;
  }

  /** Applies a stored change made here; it is stored, so the other replicas hear of it even if applying it here fails. */
  async #applyStored(name: string): Promise<void> {
    try {
      await this.#apply();
    } finally {
      this.#changed({ server: name, kind: 'stored' });
    }
  }

  #changed(change: ServerChange): void {
    for (const listener of this.#changeListeners) {
      try {
        listener(change);
      } catch (error) {
        // The change is made: a listener's fault must not turn it into a failure for whoever asked.
        this.#deps.logger.warn({ err: error, server: change.server }, 'a server change listener failed');
      }
    }
  }

  async #apply(): Promise<void> {
    const { added, removed, changed, updated } = await this.#deps.upstreams.apply(this.all());
    if (added.length || removed.length || changed.length || updated.length) this.#deps.logger.info({ added, removed, changed, updated }, 'upstream servers changed');
  }

  #serial<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(operation, operation);
    this.#queue = next.catch(() => {}); // the caller of this operation receives its failure; the queue only orders
    return next;
  }
}

function notFound(name: string): RegistryError {
  return new RegistryError(404, 'not_found', `no server named "${name}"`);
}

function validate(input: unknown): ServerConfig {
  const result = ServerConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  throw new RegistryError(400, 'invalid_body', `invalid server definition: ${details.map((d) => `${d.path || '(body)'}: ${d.message}`).join('; ')}`, details);
}

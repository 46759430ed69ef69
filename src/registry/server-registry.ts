import type { Logger } from 'pino';
import { ServerConfigSchema, type ServerConfig } from '../config/schema.js';
import type { ServerRepository } from '../store/server-repository.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { RegistryError } from './errors.js';

export type ServerSource = 'config' | 'api';

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

  constructor(deps: ServerRegistryDeps) {
    this.#deps = deps;
  }

  /** Loads the stored servers and applies everything. */
  async start(configServers: Readonly<Record<string, ServerConfig>>): Promise<void> {
    this.#configServers = { ...configServers };
    const stored = (await this.#deps.repository?.list()) ?? [];
    for (const { name, definition } of stored) {
      const parsed = ServerConfigSchema.safeParse(definition);
      if (parsed.success && parsed.data.transport === 'stdio' && !this.#deps.allowStdio) {
        // Stored while the setting was on (or before it existed): kept, listed and deletable, never run.
        this.#deps.logger.warn({ server: name }, `stored stdio server not started: ${ALLOW_STDIO_SETTING} is false`);
        this.#apiServers[name] = { ...parsed.data, enabled: false };
      } else if (parsed.success) this.#apiServers[name] = parsed.data;
      else this.#deps.logger.error({ server: name, issues: parsed.error.issues }, 'stored server definition is invalid; skipped');
    }
    await this.#apply();
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
      await this.#apply();
      return definition;
    });
  }

  replace(name: string, input: unknown): Promise<ServerConfig> {
    return this.#serial(async () => {
      this.#writable(name);
      const definition = this.#validate(input);
      await this.#repository().update(name, definition);
      this.#apiServers[name] = definition;
      await this.#apply();
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
      await this.#repository().update(name, definition);
      this.#apiServers[name] = definition;
      await this.#apply();
      return definition;
    });
  }

  remove(name: string): Promise<void> {
    return this.#serial(async () => {
      this.#writable(name);
      await this.#repository().delete(name);
      delete this.#apiServers[name];
      await this.#apply();
    });
  }

  #writable(name: string): ServerConfig {
    const source = this.sourceOf(name);
    if (source === undefined) throw new RegistryError(404, 'not_found', `no server named "${name}"`);
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

  async #apply(): Promise<void> {
    const { added, removed, changed } = await this.#deps.upstreams.apply(this.all());
    if (added.length || removed.length || changed.length) this.#deps.logger.info({ added, removed, changed }, 'upstream servers changed');
  }

  #serial<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(operation, operation);
    this.#queue = next.catch(() => {}); // the caller of this operation receives its failure; the queue only orders
    return next;
  }
}

function validate(input: unknown): ServerConfig {
  const result = ServerConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  throw new RegistryError(400, 'invalid_body', `invalid server definition: ${details.map((d) => `${d.path || '(body)'}: ${d.message}`).join('; ')}`, details);
}

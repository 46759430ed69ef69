import type { Logger } from 'pino';
import type { AccessControl } from '../auth/access-control.js';
import type { ApiKeys } from '../auth/api-keys.js';
import { bestEffort } from '../observability/best-effort.js';
import type { ServerChange, ServerRegistry } from '../registry/server-registry.js';
import { SharedStateUnavailableError, type ReplicaBus, type ReplicaMessage } from './shared-state.js';

/**
 * How often the stored servers are read again regardless of announcements. The bus delivers
 * at most once (Redis pub/sub), so a lost announcement leaves a replica wrong until this
 * re-read; one small query per replica at this rate costs nothing worth a setting.
 */
export const STORED_SERVERS_REREAD_MS = 30_000;

type ConfigChanged = Extract<ReplicaMessage, { kind: 'config-changed' }>;

/**
 * A `servers` message's `detail`: the server's name, prefixed with `restart:` for a restart
 * (server names hold only letters, digits, `_` and `-`, so the prefix cannot be part of one).
 */
const RESTART_PREFIX = 'restart:';

export function serverChangeDetail(change: ServerChange): string {
  return change.kind === 'restart' ? `${RESTART_PREFIX}${change.server}` : change.server;
}

/** The server a `servers` message asks every replica to restart, if it asks that. */
export function restartNamedIn(detail: string | undefined): string | undefined {
  return detail?.startsWith(RESTART_PREFIX) ? detail.slice(RESTART_PREFIX.length) || undefined : undefined;
}

export interface ConfigChangesDeps {
  bus: ReplicaBus;
  /** This replica's id: a message from it (a bus that echoes) is not applied again. */
  replicaId: string;
  accessControl: AccessControl;
  /** Absent without a database (nothing is stored, so nothing changes elsewhere). */
  apiKeys?: ApiKeys | undefined;
  /** Absent where no servers are run (the CLI changes keys and rules only). */
  registry?: ServerRegistry | undefined;
  logger: Logger;
  /** Default `STORED_SERVERS_REREAD_MS`. */
  serversRereadMs?: number | undefined;
}

/**
 * Keeps replicas' stored configuration in step: a change made here (servers, access rules, API
 * keys) is announced on the replica bus once the database holds it, and an announcement heard
 * from another replica makes this one read what changed from the database. What is applied
 * from an announcement is never announced again (the components report only their own
 * changes), so two replicas cannot echo each other. The database stays the truth: a message
 * carries no data beyond a name or a key id, and a lost one is repaired by the periodic reloads
 * (access rules every `access.refreshSeconds`, stored servers every `serversRereadMs`).
 */
export class ConfigChanges {
  readonly #deps: ConfigChangesDeps;
  readonly #stops: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Set while announcements fail, so a bus that stays down is reported once, not per change. */
  #failing = false;

  constructor(deps: ConfigChangesDeps) {
    this.#deps = deps;
  }

  /** Starts announcing this replica's changes and applying the others'. */
  start(): void {
    const { accessControl, apiKeys, registry, bus } = this.#deps;
    this.#stops.push(
      accessControl.onChanged(() => this.#announce({ kind: 'config-changed', what: 'access' })),
      bus.onMessage((message, from) => {
        if (message.kind === 'config-changed' && from !== this.#deps.replicaId) this.#heard(message, from);
      }),
    );
    if (apiKeys) this.#stops.push(apiKeys.onChanged((id) => this.#announce({ kind: 'config-changed', what: 'api-keys', detail: id })));
    if (registry) {
      this.#stops.push(registry.onChanged((change) => this.#announce({ kind: 'config-changed', what: 'servers', detail: serverChangeDetail(change) })));
      this.#timer = setInterval(() => void bestEffort(registry.reloadStored(), this.#deps.logger, 'periodic re-read of the stored servers', 'warn'), this.#deps.serversRereadMs ?? STORED_SERVERS_REREAD_MS);
      this.#timer.unref();
    }
  }

  stop(): void {
    for (const stop of this.#stops.splice(0)) stop();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #announce(message: ConfigChanged): void {
    // The change is stored whatever happens here: the request that made it succeeds, and the
    // other replicas' periodic reloads pick it up if they are not told.
    this.#deps.bus.broadcast(message).then(
      () => {
        if (!this.#failing) return;
        this.#failing = false;
        this.#deps.logger.info('configuration changes reach the other replicas again');
      },
      (error: unknown) => {
        if (this.#failing) return;
        this.#failing = true;
        this.#deps.logger.warn(
          { err: error instanceof SharedStateUnavailableError ? error.message : error, what: message.what },
          'could not tell the other replicas of a configuration change; they pick it up at their next periodic reload',
        );
      },
    );
  }

  #heard(message: ConfigChanged, from: string): void {
    const { logger, registry, accessControl, apiKeys } = this.#deps;
    logger.debug({ what: message.what, detail: message.detail, from }, 'configuration changed on another replica');
    switch (message.what) {
      case 'servers': {
        if (!registry) return;
        const restart = restartNamedIn(message.detail);
        void bestEffort(restart ? registry.restartHeard(restart) : registry.reloadStored(), logger, `apply a server change from another replica`, 'warn');
        return;
      }
      case 'access':
        void bestEffort(accessControl.reload(), logger, 'reload access rules changed on another replica', 'warn');
        return;
      case 'api-keys':
        if (apiKeys) void bestEffort(apiKeys.changedElsewhere(message.detail), logger, 'apply an API key change from another replica', 'warn');
        return;
    }
  }
}

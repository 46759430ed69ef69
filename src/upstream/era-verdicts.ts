import type { PriorDiscovery } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import { describeError } from './failure-classification.js';

/**
 * How long a remembered verdict is trusted. A stale modern verdict fails loudly at the first
 * request, but a stale legacy one succeeds silently against a server upgraded since (it still
 * answers `initialize`): only this horizon ever makes Conflux look again.
 */
export const VERDICT_HORIZON_MS = 24 * 60 * 60 * 1000;

/** An upstream's protocol era as last found out, and when (ms since the epoch). */
export interface StoredVerdict {
  verdict: PriorDiscovery;
  storedAt: number;
}

/**
 * Each upstream's era verdict by server name (a replica's by `replicaVerdictKey`), so that a
 * reconnect skips the `server/discover` probe. Every method may be asynchronous, so a shared
 * store (Redis) can serve several gateways; the in-memory one serves one process.
 */
export interface EraVerdictStore {
  get(server: string): StoredVerdict | undefined | Promise<StoredVerdict | undefined>;
  set(server: string, verdict: StoredVerdict): void | Promise<void>;
  /** Forgets the server's verdict, and its replicas' (the keys `replicaVerdictKey` makes from its name). */
  delete(server: string): void | Promise<void>;
}

/** Server names never hold it (letters, digits, `_` and `-` only), so a replica's key cannot be another server's. */
const REPLICA_SEPARATOR = '#';

/** The key of one replica's verdict: its server's name and the replica's key (see `replica-tokens.ts`). */
export function replicaVerdictKey(server: string, replica: string): string {
  return `${server}${REPLICA_SEPARATOR}${replica}`;
}

export class InMemoryEraVerdicts implements EraVerdictStore {
  readonly #verdicts = new Map<string, StoredVerdict>();

  get(server: string): StoredVerdict | undefined {
    return this.#verdicts.get(server);
  }

  set(server: string, verdict: StoredVerdict): void {
    this.#verdicts.set(server, verdict);
  }

  delete(server: string): void {
    this.#verdicts.delete(server);
    const replicas = `${server}${REPLICA_SEPARATOR}`;
    for (const key of this.#verdicts.keys()) if (key.startsWith(replicas)) this.#verdicts.delete(key);
  }
}

/** The verdict to connect with: the stored one while it is younger than `horizonMs`, else none (probe again). */
export function usableVerdict(stored: StoredVerdict | undefined, nowMs: number, horizonMs = VERDICT_HORIZON_MS): PriorDiscovery | undefined {
  if (!stored) return undefined;
  const age = nowMs - stored.storedAt;
  return age >= 0 && age < horizonMs ? stored.verdict : undefined;
}

/**
 * One server's entry in the store, as its connection uses it: recalled before each connect,
 * remembered when a connection found the era out, forgotten when it proved wrong. The store
 * failing costs a probe, never a connection.
 */
export class EraMemory {
  constructor(
    private readonly store: EraVerdictStore,
    private readonly server: string,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /** The verdict to connect with, or none (probe). */
  async recall(): Promise<PriorDiscovery | undefined> {
    try {
      return usableVerdict(await this.store.get(this.server), this.now());
    } catch (error) {
      this.logger.warn({ err: describeError(error) }, 'could not read the remembered protocol era; probing');
      return undefined;
    }
  }

  remember(verdict: PriorDiscovery): Promise<void> {
    return bestEffort(() => this.store.set(this.server, { verdict, storedAt: this.now() }), this.logger, 'remember the upstream protocol era', 'warn');
  }

  forget(): Promise<void> {
    return bestEffort(() => this.store.delete(this.server), this.logger, 'forget the upstream protocol era', 'warn');
  }
}

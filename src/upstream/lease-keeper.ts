import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { withTimeout } from '../limits/with-timeout.js';
import { bestEffort } from '../observability/best-effort.js';
import type { LeaseStore } from '../state/shared-state.js';

export interface LeaseKeeperOptions {
  /** The lease's name in the store. */
  name: string;
  leases: LeaseStore;
  /** This replica's id, as the store names the holder. */
  replicaId: string;
  ttlMs: number;
  /**
   * How long before the ttl runs out a holder whose renewals go unanswered stops counting itself
   * the holder: the time it needs to stop what it runs under the lease, so that is gone before
   * another replica can take it. 0 when nothing needs stopping.
   */
  stopBudgetMs?: number;
  logger: Logger;
  /** Called after every round (a renewal, a take, a read of the holder) and when a held lease runs out unrenewed. */
  onRound: () => void;
}

/**
 * Holds a named lease whenever it can. A round renews the lease this replica holds, takes it
 * when nobody does, or else reads who holds it: a holder that died is replaced within about one
 * ttl. A holder whose store does not answer keeps holding only until the ttl since its last
 * renewal was sent, less the stop budget, has passed (the ttl itself: another replica may take
 * it then), whatever the store says later: `held` turns false on that timer, not on an answer.
 * Rounds come every third of that holding window.
 */
export class LeaseKeeper {
  readonly #options: LeaseKeeperOptions;
  /** How long a renewal lets this replica count itself the holder: the ttl less the time it needs to stop. */
  readonly #window: number;
  #held = false;
  #holder: string | undefined;
  #rounds = 0;
  #round: Promise<void> | undefined;
  #next: NodeJS.Timeout | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #stopped = false;
  /**
   * This keeper's own mark in the lease: the keeper that replaces it on this replica (a config
   * change) does not extend the lease it holds, and a late release of it cannot free the new one's.
   */
  readonly #keeper = randomUUID();

  constructor(options: LeaseKeeperOptions) {
    this.#options = options;
    this.#window = options.ttlMs - (options.stopBudgetMs ?? 0);
    if (this.#window <= 0) throw new Error(`the lease ${options.name} must outlast the time its holder needs to stop`);
  }

  /** Whether this replica holds the lease. */
  get held(): boolean {
    return this.#held;
  }

  /** The replica holding the lease as last seen (this one's id while `held`); undefined when nobody does, or nobody is known to. */
  get holder(): string | undefined {
    return this.#holder;
  }

  /** Rounds completed, answered or not: none yet means nothing is known. */
  get rounds(): number {
    return this.#rounds;
  }

  /** Starts the rounds; the first runs now. */
  start(): void {
    void this.renew();
  }

  /** Runs a round now (a holder let go, say), unless one is under way; resolves when it ends. */
  renew(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    clearTimeout(this.#next);
    this.#round ??= this.#run().finally(() => {
      this.#round = undefined;
      this.#rounds++;
      if (this.#stopped) return;
      this.#next = setTimeout(() => void this.renew(), this.#window / 3);
      this.#next.unref();
      this.#options.onRound();
    });
    return this.#round;
  }

  /** Stops the rounds and lets go of the lease when held (so another replica takes it at once). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#next);
    clearTimeout(this.#expiry);
    await this.#round;
    const { leases, name, logger } = this.#options;
    if (this.#held) await bestEffort(() => withTimeout(leases.release(name, this.#keeper), this.#window / 3), logger, `release the lease ${name}`, 'warn');
    this.#held = false;
    this.#holder = undefined;
  }

  async #run(): Promise<void> {
    const { leases, name, ttlMs, replicaId, logger } = this.#options;
    const bound = this.#window / 3;
    const sentAt = performance.now();
    try {
      if (await withTimeout(leases.acquire(name, ttlMs, this.#keeper), bound)) {
        if (this.#stopped) {
          // Taken while stopping: stop() lets go of it.
          this.#held = true;
          return;
        }
        this.#expireIn(this.#window - (performance.now() - sentAt));
        this.#held = true;
        this.#holder = replicaId;
        return;
      }
      this.#letGo();
      this.#holder = await withTimeout(leases.holder(name), bound);
    } catch (error) {
      // Nothing learnt: a holder holds until its expiry timer says otherwise, and the holder known stays known.
      logger.debug({ err: error, lease: name }, 'the lease could not be renewed or read');
    }
  }

  /** Arms the timer after which a lease not renewed since is no longer this replica's. */
  #expireIn(ms: number): void {
    clearTimeout(this.#expiry);
    this.#expiry = setTimeout(() => {
      this.#options.logger.warn({ lease: this.#options.name }, 'the lease is about to run out without being renewed; letting go of it');
      this.#letGo();
      this.#options.onRound();
    }, Math.max(0, ms));
    this.#expiry.unref();
  }

  #letGo(): void {
    clearTimeout(this.#expiry);
    this.#held = false;
    // No longer this replica, whoever it is now: until a read of the store tells, nobody is known to hold it.
    if (this.#holder === this.#options.replicaId) this.#holder = undefined;
  }
}

import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import { withTimeout } from '../limits/with-timeout.js';

/** What a stream was opened with, as far as its end can be known. */
export interface StreamCredential {
  /** When the token or key stops being valid (epoch ms). */
  expiresAt?: number | undefined;
  /** The API key, whose revocation ends the stream too. */
  apiKeyId?: string | undefined;
}

export interface CredentialBoundStreamsOptions {
  /** Whether an API key may still be used (reads the database, so it sees revocations made anywhere). */
  keyActive?: ((keyId: string) => Promise<boolean>) | undefined;
  /** How often expiry is checked and keys are looked up again. */
  checkIntervalMs: number;
  logger: Logger;
}

interface Entry extends StreamCredential {
  principal: string;
  close: () => void;
}

/**
 * Long-lived streams (the GET stream of a session) outlive the request that authenticated
 * them. Each is bound to the credential it was opened with and ended when that credential
 * ends: at the token's or key's expiry, at once when a key is revoked through this gateway,
 * and within one check interval when it is revoked elsewhere (the CLI, another replica).
 * A client that still holds a valid credential simply opens its stream again.
 */
export class CredentialBoundStreams {
  readonly #entries = new Set<Entry>();
  readonly #options: CredentialBoundStreamsOptions;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(options: CredentialBoundStreamsOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Watches a stream opened by `principal`; `close` ends it. Returns the function that stops
   * watching (call it when the stream ends by itself). Credentials with no known end are not
   * watched.
   */
  watch(principal: Principal, close: () => void): () => void {
    if (principal.expiresAt === undefined && principal.apiKeyId === undefined) return () => {};
    const entry: Entry = { principal: principal.id, expiresAt: principal.expiresAt, apiKeyId: principal.apiKeyId, close };
    this.#entries.add(entry);
    this.#timer ??= setInterval(() => void this.#check(), this.#options.checkIntervalMs).unref();
    return () => this.#remove(entry);
  }

  /** A key was revoked through this gateway: its streams end now. */
  revoked(keyId: string): void {
    for (const entry of this.#entries) if (entry.apiKeyId === keyId) this.#end(entry, 'API key revoked');
  }

  /** Ends every watched stream and stops checking. */
  stop(): void {
    for (const entry of this.#entries) this.#end(entry, 'gateway stopping');
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #check(): Promise<void> {
    // Expiry needs no I/O: judged every tick, even while a key lookup is still out.
    const now = Date.now();
    for (const entry of this.#entries) if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.#end(entry, 'credential expired');
    const keyActive = this.#options.keyActive;
    if (!keyActive || this.#checking) return;
    this.#checking = true;
    try {
      const keys = new Set([...this.#entries].map((e) => e.apiKeyId).filter((k): k is string => k !== undefined));
      for (const key of keys) {
        // A database that does not answer (or not in time) ends nothing: the next check asks again.
        const active = await withTimeout(keyActive(key), this.#options.checkIntervalMs * 2).catch(() => true);
        if (!active) this.revoked(key);
      }
    } finally {
      this.#checking = false;
    }
  }

  #end(entry: Entry, reason: string): void {
    this.#remove(entry);
    this.#options.logger.info({ principal: entry.principal, reason }, 'stream ended with its credential');
    entry.close();
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry);
    if (this.#entries.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

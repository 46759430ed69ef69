import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database } from './database.js';
import { upstreamCredentials } from './schema.js';

/** A row of `upstream_credentials` as stored: the secret still sealed. */
export interface StoredCredential {
  kind: 'token' | 'client';
  owner: string;
  target: string;
  secret: string | null;
  keyId: string | null;
  metadata: Record<string, unknown>;
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type NewCredential = Pick<StoredCredential, 'secret' | 'keyId' | 'metadata' | 'expiresAt'>;

/**
 * Users' upstream tokens and the gateway's client registrations, sealed by the caller (see
 * upstream/auth/token-cipher.ts): nothing here sees a secret in clear.
 */
export class UpstreamTokenRepository {
  constructor(private readonly db: Database) {}

  /** One user's tokens for one server. */
  async token(user: string, server: string): Promise<StoredCredential | undefined> {
    return this.#get('token', user, server);
  }

  /** Every stored connection, or one user's, by server. */
  async tokens(user?: string): Promise<StoredCredential[]> {
    const rows = await this.db
      .select()
      .from(upstreamCredentials)
      .where(user === undefined ? eq(upstreamCredentials.kind, 'token') : and(eq(upstreamCredentials.kind, 'token'), eq(upstreamCredentials.owner, user)))
      .orderBy(asc(upstreamCredentials.owner), asc(upstreamCredentials.target));
    return rows as StoredCredential[];
  }

  /** Stores a user's new tokens for a server (an authorization, a token handed in), replacing any: the connection is new from now. */
  async saveToken(user: string, server: string, value: NewCredential): Promise<void> {
    await this.#upsert('token', user, server, value, true);
  }

  /**
   * Replaces the tokens sealed as `previousSecret` by their refreshed successors, keeping the
   * connection's creation time. False when the row no longer holds them (revoked, or replaced
   * meanwhile): the refresh's result is dropped rather than bringing a revoked connection back.
   * The sealed value serves as the row's version: every write seals with a fresh IV.
   */
  async replaceToken(user: string, server: string, value: NewCredential, previousSecret: string): Promise<boolean> {
    const rows = await this.db
      .update(upstreamCredentials)
      .set({ ...value, updatedAt: sql`now()` })
      .where(and(this.#key('token', user, server), eq(upstreamCredentials.secret, previousSecret)))
      .returning({ owner: upstreamCredentials.owner });
    return rows.length === 1;
  }

  /** True when there was one. `onlySecret`: delete only while the row still holds that sealed value. */
  async deleteToken(user: string, server: string, onlySecret?: string): Promise<boolean> {
    if (onlySecret === undefined) return this.#delete('token', user, server);
    const rows = await this.db
      .delete(upstreamCredentials)
      .where(and(this.#key('token', user, server), eq(upstreamCredentials.secret, onlySecret)))
      .returning({ owner: upstreamCredentials.owner });
    return rows.length === 1;
  }

  /** The gateway's registration at `issuer` for `redirectUrl`. */
  async client(issuer: string, redirectUrl: string): Promise<StoredCredential | undefined> {
    return this.#get('client', issuer, redirectUrl);
  }

  async saveClient(issuer: string, redirectUrl: string, value: NewCredential): Promise<void> {
    await this.#upsert('client', issuer, redirectUrl, value, true);
  }

  async deleteClient(issuer: string, redirectUrl: string): Promise<boolean> {
    return this.#delete('client', issuer, redirectUrl);
  }

  async #get(kind: StoredCredential['kind'], owner: string, target: string): Promise<StoredCredential | undefined> {
    const rows = await this.db.select().from(upstreamCredentials).where(this.#key(kind, owner, target));
    return rows[0] as StoredCredential | undefined;
  }

  async #upsert(kind: StoredCredential['kind'], owner: string, target: string, value: NewCredential, renew: boolean): Promise<void> {
    await this.db
      .insert(upstreamCredentials)
      .values({ kind, owner, target, ...value })
      .onConflictDoUpdate({
        target: [upstreamCredentials.kind, upstreamCredentials.owner, upstreamCredentials.target],
        set: { ...value, updatedAt: sql`now()`, ...(renew ? { createdAt: sql`now()` } : {}) },
      });
  }

  async #delete(kind: StoredCredential['kind'], owner: string, target: string): Promise<boolean> {
    const rows = await this.db.delete(upstreamCredentials).where(this.#key(kind, owner, target)).returning({ owner: upstreamCredentials.owner });
    return rows.length === 1;
  }

  #key(kind: StoredCredential['kind'], owner: string, target: string) {
    return and(eq(upstreamCredentials.kind, kind), eq(upstreamCredentials.owner, owner), eq(upstreamCredentials.target, target));
  }
}

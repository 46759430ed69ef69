import type { OAuthTokens, StoredOAuthClientInformation } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { NewCredential, StoredCredential, UpstreamTokenRepository } from '../../store/upstream-token-repository.js';
import { TokenDecryptionError, type TokenCipher } from './token-cipher.js';
import { UpstreamAuthError } from './upstream-auth.js';

/** One user's tokens for one server, opened. Held in memory only while in use. */
export interface UserTokens {
  accessToken: string;
  refreshToken: string | undefined;
  scope: string | undefined;
  /** The authorization server that issued them; undefined for a token a user handed in through the API. */
  issuer: string | undefined;
  /** Epoch ms; undefined when the authorization server gave no lifetime. */
  expiresAt: number | undefined;
  /** Epoch ms: when they were stored. */
  obtainedAt: number;
  /** `authorization`: got by the gateway's authorization code flow; `api`: given by the user (`POST /api/v1/sessions`). */
  source: 'authorization' | 'api';
  /** The row they were read from, as sealed (unique per write): a refresh or a delete applies only while the row still holds them. */
  revision: string;
}

/** A stored connection as it may be shown: never a token. */
export interface UserConnection {
  user: string;
  server: string;
  createdAt: Date;
  expiresAt: Date | null;
  scopes: string[];
  source: UserTokens['source'];
}

/** What the sealed part of a token row holds. */
const SealedTokens = z.object({ access_token: z.string().min(1), refresh_token: z.string().min(1).optional() });
const TokenMetadata = z.object({ issuer: z.string().optional(), scope: z.string().optional(), source: z.enum(['authorization', 'api']).default('authorization') });
const ClientMetadata = z.looseObject({ client_id: z.string().min(1) });

/**
 * A store's answer is re-read after this long: a revocation made through another replica
 * reaches this one within it, and a busy connection does not read the database per request.
 */
const RECHECK_MS = 10_000;

/**
 * Users' tokens and the gateway's client registrations, sealed on the way into the database
 * and opened on the way out (the row's identity is the cipher's context, so a sealed value
 * moved to another row does not open). A row that does not open (its key removed, or tampered
 * with) reads as absent: the user is asked to authorise again, which replaces it.
 */
export class UserTokenStore {
  readonly #cache = new Map<string, { tokens: UserTokens | undefined; at: number }>();
  /** Revocations seen by this replica, per user and server: an authorization started before one does not store its tokens after it. */
  readonly #revocations = new Map<string, number>();

  constructor(
    private readonly repository: UpstreamTokenRepository,
    private readonly cipher: TokenCipher,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async get(user: string, server: string): Promise<UserTokens | undefined> {
    const key = cacheKey(user, server);
    const cached = this.#cache.get(key);
    if (cached && this.now() - cached.at < RECHECK_MS) return cached.tokens;
    const row = await this.repository.token(user, server);
    const tokens = row ? this.#openTokens(row, user, server) : undefined;
    this.#cache.set(key, { tokens, at: this.now() });
    return tokens;
  }

  /** The stored tokens as they are now, past the cache (a refresh decides on them). */
  async reload(user: string, server: string): Promise<UserTokens | undefined> {
    this.#cache.delete(cacheKey(user, server));
    return this.get(user, server);
  }

  /**
   * Stores new tokens from a token endpoint (or a user), replacing any. `revocationMark`: the
   * mark taken when the authorization that got them started; when the user revoked the
   * connection since, nothing is stored (`UpstreamAuthError`, `failed`).
   */
  async save(user: string, server: string, tokens: OAuthTokens & { issuer?: string | undefined }, options: { source: UserTokens['source']; revocationMark?: number | undefined }): Promise<UserTokens> {
    const { opened, value } = this.#sealed(user, server, tokens, options.source, undefined);
    if (options.revocationMark !== undefined && this.revocationMark(user, server) !== options.revocationMark) {
      throw new UpstreamAuthError('failed', server, `the connection to "${server}" was revoked while it was being authorised`);
    }
    await this.repository.saveToken(user, server, value);
    this.#cache.set(cacheKey(user, server), { tokens: opened, at: this.now() });
    return opened;
  }

  /**
   * Stores the refreshed successors of `previous` (a refresh answer without a refresh token
   * keeps the one it was made with; the connection keeps its creation time), only while the
   * row still holds `previous`. Undefined when it does not (revoked or replaced meanwhile).
   */
  async replace(user: string, server: string, tokens: OAuthTokens & { issuer?: string | undefined }, previous: UserTokens): Promise<UserTokens | undefined> {
    const { opened, value } = this.#sealed(user, server, tokens, previous.source, previous);
    const replaced = await this.repository.replaceToken(user, server, value, previous.revision);
    if (!replaced) {
      this.#cache.delete(cacheKey(user, server));
      return undefined;
    }
    this.#cache.set(cacheKey(user, server), { tokens: opened, at: this.now() });
    return opened;
  }

  #sealed(user: string, server: string, tokens: OAuthTokens & { issuer?: string | undefined }, source: UserTokens['source'], previous: UserTokens | undefined): { opened: UserTokens; value: NewCredential } {
    const refreshToken = tokens.refresh_token ?? previous?.refreshToken;
    const secret = JSON.stringify({ access_token: tokens.access_token, ...(refreshToken ? { refresh_token: refreshToken } : {}) });
    const sealed = this.cipher.seal(secret, tokenContext(user, server));
    const opened: UserTokens = {
      accessToken: tokens.access_token,
      refreshToken,
      scope: tokens.scope ?? previous?.scope,
      issuer: tokens.issuer ?? previous?.issuer,
      expiresAt: tokens.expires_in === undefined ? undefined : this.now() + tokens.expires_in * 1000,
      obtainedAt: this.now(),
      source,
      revision: sealed.ciphertext,
    };
    const value: NewCredential = {
      secret: sealed.ciphertext,
      keyId: sealed.keyId,
      metadata: { ...(opened.issuer ? { issuer: opened.issuer } : {}), ...(opened.scope ? { scope: opened.scope } : {}), source },
      expiresAt: opened.expiresAt === undefined ? null : new Date(opened.expiresAt),
    };
    return { opened, value };
  }

  /** True when there was a connection. `only`: delete only while the row still holds these tokens (not a newer refresh's). */
  async delete(user: string, server: string, only?: UserTokens): Promise<boolean> {
    this.#cache.delete(cacheKey(user, server));
    return this.repository.deleteToken(user, server, only?.revision);
  }

  /** The user revoked the connection: deleted, and authorizations started before now store nothing. True when there was one. */
  async revoke(user: string, server: string): Promise<boolean> {
    const key = cacheKey(user, server);
    this.#revocations.set(key, (this.#revocations.get(key) ?? 0) + 1);
    return this.delete(user, server);
  }

  /** Another replica stored new tokens: the next read is the database's. */
  forget(user: string, server: string): void {
    this.#cache.delete(cacheKey(user, server));
  }

  /** Another replica revoked the connection (and deleted the row): authorizations started here before now store nothing either. */
  revokedElsewhere(user: string, server: string): void {
    const key = cacheKey(user, server);
    this.#revocations.set(key, (this.#revocations.get(key) ?? 0) + 1);
    this.#cache.delete(key);
  }

  /** A mark an authorization takes when it starts, handed back to `save` at its callback. */
  revocationMark(user: string, server: string): number {
    return this.#revocations.get(cacheKey(user, server)) ?? 0;
  }

  /** Stored connections: one user's, or everyone's. */
  async list(user?: string): Promise<UserConnection[]> {
    return (await this.repository.tokens(user)).map(connectionOf);
  }

  /** The gateway's registration at `issuer` for `redirectUrl` (a dynamic registration's result). */
  async client(issuer: string, redirectUrl: string): Promise<StoredOAuthClientInformation | undefined> {
    const row = await this.repository.client(issuer, redirectUrl);
    if (!row) return undefined;
    const info = ClientMetadata.safeParse(row.metadata);
    if (!info.success) return undefined;
    if (row.secret === null || row.keyId === null) return info.data as StoredOAuthClientInformation;
    try {
      const secret = this.cipher.open({ keyId: row.keyId, ciphertext: row.secret }, clientContext(issuer, redirectUrl));
      return { ...info.data, client_secret: secret } as StoredOAuthClientInformation;
    } catch (error) {
      if (!(error instanceof TokenDecryptionError)) throw error;
      this.logger.warn({ issuer, reason: error.message }, 'a stored client registration does not open; registering again');
      return undefined;
    }
  }

  /** Stores a registration; its secret (if any) sealed, the rest (client id, metadata) as it is. */
  async saveClient(issuer: string, redirectUrl: string, info: StoredOAuthClientInformation): Promise<void> {
    const { client_secret: secret, ...rest } = info as StoredOAuthClientInformation & { client_secret?: string };
    const sealed = secret ? this.cipher.seal(secret, clientContext(issuer, redirectUrl)) : undefined;
    await this.repository.saveClient(issuer, redirectUrl, {
      secret: sealed?.ciphertext ?? null,
      keyId: sealed?.keyId ?? null,
      metadata: rest as Record<string, unknown>,
      expiresAt: typeof rest.client_secret_expires_at === 'number' && rest.client_secret_expires_at > 0 ? new Date(rest.client_secret_expires_at * 1000) : null,
    });
  }

  /**
   * Deletes the registration at `issuer` for `redirectUrl`; with `onlyClientId`, only while it is
   * that client (a registration made since, by another replica or user, stays). True when one was deleted.
   */
  async deleteClient(issuer: string, redirectUrl: string, onlyClientId?: string): Promise<boolean> {
    if (onlyClientId !== undefined) {
      // Read, then delete (the repository has no conditional delete for registrations): one saved
      // in between would be lost too, and the next authorization would register again.
      const row = await this.repository.client(issuer, redirectUrl);
      if (!row || ClientMetadata.safeParse(row.metadata).data?.client_id !== onlyClientId) return false;
    }
    return this.repository.deleteClient(issuer, redirectUrl);
  }

  #openTokens(row: StoredCredential, user: string, server: string): UserTokens | undefined {
    if (row.secret === null || row.keyId === null) return undefined;
    let opened: z.infer<typeof SealedTokens>;
    try {
      opened = SealedTokens.parse(JSON.parse(this.cipher.open({ keyId: row.keyId, ciphertext: row.secret }, tokenContext(user, server))));
    } catch (error) {
      if (!(error instanceof TokenDecryptionError || error instanceof SyntaxError || error instanceof z.ZodError)) throw error;
      this.logger.warn({ user, server, reason: error instanceof TokenDecryptionError ? error.message : 'malformed' }, "a stored upstream token does not open; the user will be asked to authorise again");
      return undefined;
    }
    const metadata = TokenMetadata.safeParse(row.metadata);
    return {
      accessToken: opened.access_token,
      refreshToken: opened.refresh_token,
      scope: metadata.success ? metadata.data.scope : undefined,
      issuer: metadata.success ? metadata.data.issuer : undefined,
      expiresAt: row.expiresAt?.getTime(),
      obtainedAt: row.updatedAt.getTime(),
      source: metadata.success ? metadata.data.source : 'authorization',
      revision: row.secret,
    };
  }
}

/** A stored token row as a connection may be shown: who, where, since and until when, which scopes. */
export function connectionOf(row: StoredCredential): UserConnection {
  const metadata = TokenMetadata.safeParse(row.metadata);
  const scope = metadata.success ? metadata.data.scope : undefined;
  return {
    user: row.owner,
    server: row.target,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    scopes: scope ? scope.split(' ').filter(Boolean) : [],
    source: metadata.success ? metadata.data.source : 'authorization',
  };
}

function cacheKey(user: string, server: string): string {
  return JSON.stringify([user, server]);
}

/** What a token row's ciphertext is bound to: its own identity. */
function tokenContext(user: string, server: string): string {
  return `token\0${user}\0${server}`;
}

function clientContext(issuer: string, redirectUrl: string): string {
  return `client\0${issuer}\0${redirectUrl}`;
}

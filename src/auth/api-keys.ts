import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRepository, StoredApiKey } from '../store/api-key-repository.js';
import { identityKey } from './identity-key.js';
import type { Principal } from './principal.js';
import type { Logger } from 'pino';
import { ConfluxError, type ErrorKind } from '../errors.js';
import { bestEffort } from '../observability/best-effort.js';
import { silentLogger } from '../observability/logger.js';

const PREFIX = 'cfx_';
/**
 * A key found valid is trusted this long without asking the database again. Revocation through
 * this gateway, or through another replica that announces it, applies at once; through the
 * CLI (or an announcement lost), within this time.
 */
const VERIFIED_TTL_MS = 1000;
const KEY_PATTERN = /^cfx_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface CreatedApiKey {
  /** The whole key: shown once, never stored. */
  key: string;
  record: Omit<StoredApiKey, 'hash'>;
}

export class ApiKeyError extends ConfluxError {
  readonly kind: ErrorKind = 'conflict';

  constructor(
    override readonly code: 'name_taken',
    message: string,
  ) {
    super(message);
    this.name = 'ApiKeyError';
  }
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(PREFIX);
}

/** Issues, checks and revokes API keys; only a hash of each key is stored. */
export class ApiKeys {
  /** Last-use times are written at most once a minute per key. */
  private readonly touched = new Map<string, number>();
  private readonly verified = new Map<string, { row: StoredApiKey; until: number }>();
  private readonly revokedListeners = new Set<(keyId: string) => void>();
  private readonly changeListeners = new Set<(keyId: string) => void>();
  /** Bumped when cached rows are forgotten, so a lookup that started before does not cache what it read. */
  private forgotten = 0;

  constructor(
    private readonly repository: ApiKeyRepository,
    /** Where a failed last-used update is reported; silent for one-off admin commands. */
    private readonly logger: Logger = silentLogger(),
  ) {}

  async create(options: { name: string; subject?: string | undefined; groups?: readonly string[] | undefined; expiresAt?: Date | undefined }): Promise<CreatedApiKey> {
    const id = randomBytes(9).toString('base64url').replace(/[-_]/g, 'x').slice(0, 12);
    const key = `${PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const record = {
      id,
      name: options.name,
      subject: options.subject ?? `key:${options.name}`,
      groups: [...(options.groups ?? [])],
      expiresAt: options.expiresAt ?? null,
    };
    if (!(await this.repository.insert({ ...record, hash: digest(key) }))) {
      throw new ApiKeyError('name_taken', `an active API key is already named "${options.name}"`);
    }
    this.notify(this.changeListeners, id);
    return { key, record: { ...record, createdAt: new Date(), revokedAt: null, lastUsedAt: null } };
  }

  async list(): Promise<Omit<StoredApiKey, 'hash'>[]> {
    return (await this.repository.list()).map(({ hash: _hash, ...rest }) => rest);
  }

  async revoke(idOrName: string): Promise<Omit<StoredApiKey, 'hash'> | undefined> {
    const row = await this.repository.revoke(idOrName);
    this.forgotten++;
    this.verified.clear();
    if (!row) return undefined;
    this.notify(this.changeListeners, row.id);
    this.notify(this.revokedListeners, row.id);
    const { hash: _hash, ...rest } = row;
    return rest;
  }

  /**
   * Another replica changed the key `keyId` (or, without an id, some key): its cached row is
   * dropped, and if the key can no longer be used, its revocation is announced here as if made
   * here (`onRevoked`), so what it holds open ends. Nothing is reported to `onChanged`.
   */
  async changedElsewhere(keyId?: string): Promise<void> {
    this.forgotten++;
    if (keyId === undefined) {
      this.verified.clear();
      return;
    }
    for (const [hash, { row }] of this.verified) if (row.id === keyId) this.verified.delete(hash);
    if (!(await this.isActive(keyId))) this.notify(this.revokedListeners, keyId);
  }

  /**
   * Whether the key `keyId` may still be used: it exists, is not revoked and has not expired.
   * One primary-key read, so it can be asked for every open stream now and then; it sees
   * revocations made anywhere (the CLI, other replicas).
   */
  async isActive(keyId: string, now = new Date()): Promise<boolean> {
    const row = await this.repository.get(keyId);
    return row !== undefined && row.revokedAt === null && (row.expiresAt === null || row.expiresAt.getTime() > now.getTime());
  }

  /**
   * Calls `listener` with the key's id each time a key is revoked through this instance (the
   * REST API of this gateway), right after the database took the change, or another replica
   * announced one (`changedElsewhere`). Revocations made by the CLI are not announced: poll
   * `isActive` for those. Returns the unsubscribe function.
   */
  onRevoked(listener: (keyId: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /**
   * Calls `listener` with the key's id after each key created or revoked through this instance,
   * so other replicas can be told. Changes heard from them are not reported. Returns the
   * unsubscribe function.
   */
  onChanged(listener: (keyId: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private notify(listeners: ReadonlySet<(keyId: string) => void>, keyId: string): void {
    for (const listener of listeners) {
      try {
        listener(keyId);
      } catch (error) {
        // The change is committed: a listener's own fault must not hide it from the others or
        // turn it into an error for whoever asked for it.
        this.logger.warn({ err: error }, 'an API key listener failed');
      }
    }
  }

  /** The principal a key acts as, or a reason it is refused. Looked up on every request, so revocation is immediate. */
  async verify(key: string, now = new Date()): Promise<Principal | { refused: string }> {
    const match = KEY_PATTERN.exec(key);
    if (!match) return { refused: 'malformed API key' };
    const hash = digest(key);
    const cached = this.verified.get(hash);
    const generation = this.forgotten;
    const row = cached && cached.until > now.getTime() ? cached.row : await this.repository.get(match[1]!);
    if (!row || !equalHashes(row.hash, hash)) return { refused: 'unknown API key' };
    if (row.revokedAt) return { refused: 'API key revoked' };
    if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return { refused: 'API key expired' };
    if ((!cached || cached.until <= now.getTime()) && generation === this.forgotten) {
      if (this.verified.size >= 10_000) this.verified.clear();
      this.verified.set(hash, { row, until: now.getTime() + VERIFIED_TTL_MS });
    }
    const last = this.touched.get(row.id) ?? 0;
    if (now.getTime() - last > 60_000) {
      this.touched.set(row.id, now.getTime());
      void bestEffort(() => this.repository.touch(row.id, now), this.logger, 'record when an API key was last used', 'warn');
    }
    return {
      id: identityKey(row.subject, 'user'),
      subject: row.subject,
      groups: row.groups,
      roles: [],
      scopes: [],
      method: 'api_key',
      apiKeyId: row.id,
      ...(row.expiresAt ? { expiresAt: row.expiresAt.getTime() } : {}),
    };
  }
}

function digest(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function equalHashes(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

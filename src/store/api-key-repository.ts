import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Database } from './database.js';
import { apiKeys } from './schema.js';

export interface StoredApiKey {
  id: string;
  name: string;
  hash: string;
  subject: string;
  groups: string[];
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export class ApiKeyRepository {
  constructor(private readonly db: Database) {}

  async list(): Promise<StoredApiKey[]> {
    return this.db.select().from(apiKeys).orderBy(asc(apiKeys.createdAt));
  }

  async get(id: string): Promise<StoredApiKey | undefined> {
    const rows = await this.db.select().from(apiKeys).where(eq(apiKeys.id, id));
    return rows[0];
  }

  /** False when an active key already has the name. */
  async insert(key: Omit<StoredApiKey, 'createdAt' | 'revokedAt' | 'lastUsedAt'>): Promise<boolean> {
    const rows = await this.db.insert(apiKeys).values(key).onConflictDoNothing().returning({ id: apiKeys.id });
    return rows.length === 1;
  }

  /** Revokes an active key by id or name; the revoked row is returned. */
  async revoke(idOrName: string): Promise<StoredApiKey | undefined> {
    const active = isNull(apiKeys.revokedAt);
    const byId = await this.db.update(apiKeys).set({ revokedAt: new Date() }).where(and(eq(apiKeys.id, idOrName), active)).returning();
    if (byId[0]) return byId[0];
    const byName = await this.db.update(apiKeys).set({ revokedAt: new Date() }).where(and(eq(apiKeys.name, idOrName), active)).returning();
    return byName[0];
  }

  async touch(id: string, at: Date): Promise<void> {
    await this.db.update(apiKeys).set({ lastUsedAt: at }).where(eq(apiKeys.id, id));
  }
}

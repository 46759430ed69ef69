import { asc, eq } from 'drizzle-orm';
import type { Database } from './database.js';
import { registeredServers } from './schema.js';

export interface StoredServer {
  name: string;
  /** As stored; callers validate it with the config schema before use. */
  definition: unknown;
  createdAt: Date;
  updatedAt: Date;
}

/** Servers registered through the API. */
export class ServerRepository {
  constructor(private readonly db: Database) {}

  async list(): Promise<StoredServer[]> {
    return this.db.select().from(registeredServers).orderBy(asc(registeredServers.name));
  }

  async get(name: string): Promise<StoredServer | undefined> {
    const rows = await this.db.select().from(registeredServers).where(eq(registeredServers.name, name));
    return rows[0];
  }

  /** Inserts a new server; false when the name is taken. */
  async insert(name: string, definition: unknown): Promise<boolean> {
    const rows = await this.db
      .insert(registeredServers)
      .values({ name, definition })
      .onConflictDoNothing({ target: registeredServers.name })
      .returning({ name: registeredServers.name });
    return rows.length === 1;
  }

  /** Replaces a server's definition; false when there is no such server. */
  async update(name: string, definition: unknown): Promise<boolean> {
    const rows = await this.db
      .update(registeredServers)
      .set({ definition, updatedAt: new Date() })
      .where(eq(registeredServers.name, name))
      .returning({ name: registeredServers.name });
    return rows.length === 1;
  }

  async delete(name: string): Promise<boolean> {
    const rows = await this.db.delete(registeredServers).where(eq(registeredServers.name, name)).returning({ name: registeredServers.name });
    return rows.length === 1;
  }
}

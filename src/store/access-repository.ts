import { asc, eq } from 'drizzle-orm';
import type { Grant, ToolRule } from '../auth/access-policy.js';
import type { Database } from './database.js';
import { accessGrants, toolRules } from './schema.js';

export type NewGrant = Omit<Grant, 'id' | 'source'>;
export type NewToolRule = Omit<ToolRule, 'id' | 'source'>;

/** Access rules managed through the admin API and the CLI. */
export class AccessRepository {
  constructor(private readonly db: Database) {}

  async grants(): Promise<Grant[]> {
    const rows = await this.db.select().from(accessGrants).orderBy(asc(accessGrants.id));
    return rows.map((r) => ({
      id: String(r.id),
      source: 'database',
      subjectType: r.subjectType as Grant['subjectType'],
      subject: r.subject,
      server: r.server,
      level: r.level as Grant['level'],
    }));
  }

  async addGrant(grant: NewGrant): Promise<Grant> {
    const [row] = await this.db.insert(accessGrants).values(grant).returning({ id: accessGrants.id });
    return { ...grant, id: String(row!.id), source: 'database' };
  }

  async removeGrant(id: number): Promise<boolean> {
    const rows = await this.db.delete(accessGrants).where(eq(accessGrants.id, id)).returning({ id: accessGrants.id });
    return rows.length === 1;
  }

  async toolRules(): Promise<ToolRule[]> {
    const rows = await this.db.select().from(toolRules).orderBy(asc(toolRules.id));
    return rows.map((r) => ({
      id: String(r.id),
      source: 'database',
      subjectType: r.subjectType as ToolRule['subjectType'],
      subject: r.subject,
      server: r.server,
      effect: r.effect as ToolRule['effect'],
      pattern: r.pattern,
    }));
  }

  async addToolRule(rule: NewToolRule): Promise<ToolRule> {
    const [row] = await this.db.insert(toolRules).values(rule).returning({ id: toolRules.id });
    return { ...rule, id: String(row!.id), source: 'database' };
  }

  async removeToolRule(id: number): Promise<boolean> {
    const rows = await this.db.delete(toolRules).where(eq(toolRules.id, id)).returning({ id: toolRules.id });
    return rows.length === 1;
  }
}

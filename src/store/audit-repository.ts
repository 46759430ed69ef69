import { and, count, desc, eq, gte, lte, sql, type SQL } from 'drizzle-orm';
import type { Database } from './database.js';
import { auditEvents } from './schema.js';

export type AuditKind = 'tool_call' | 'prompt_get' | 'resource_read' | 'admin';
export type AuditStatus = 'ok' | 'error' | 'denied';

export interface AuditEvent {
  at: Date;
  kind: AuditKind;
  principal: string;
  sessionId?: string | undefined;
  channel: 'mcp' | 'rest' | 'cli';
  server?: string | undefined;
  target: string;
  arguments?: unknown;
  status: AuditStatus;
  error?: string | undefined;
  durationMs?: number | undefined;
}

export interface StoredAuditEvent extends AuditEvent {
  id: number;
}

export interface AuditQuery {
  principal?: string | undefined;
  server?: string | undefined;
  target?: string | undefined;
  kind?: AuditKind | undefined;
  status?: AuditStatus | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  limit: number;
  offset: number;
}

/** The audit trail: written in batches, read newest first. */
export class AuditRepository {
  constructor(private readonly db: Database) {}

  /**
   * One statement per batch with the rows as a single JSON parameter: drizzle building a
   * multi-row insert value by value was a few percent of the gateway's CPU under load.
   */
  async insertMany(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const rows = storableJson(
      events.map((e) => ({
        at: e.at,
        kind: e.kind,
        principal: e.principal,
        session_id: e.sessionId ?? null,
        channel: e.channel,
        server: e.server ?? null,
        target: e.target,
        arguments: e.arguments ?? null,
        status: e.status,
        error: e.error ?? null,
        duration_ms: e.durationMs ?? null,
      })),
    );
    await this.db.execute(sql`
      insert into audit_events (at, kind, principal, session_id, channel, server, target, arguments, status, error, duration_ms)
      select at, kind, principal, session_id, channel, server, target, arguments, status, error, duration_ms
      from jsonb_to_recordset(${rows}::jsonb) as r(
        at timestamptz, kind text, principal text, session_id text, channel text, server text,
        target text, arguments jsonb, status text, error text, duration_ms integer
      )`);
  }

  async query(query: AuditQuery): Promise<{ total: number; events: StoredAuditEvent[] }> {
    const conditions: SQL[] = [];
    if (query.principal) conditions.push(eq(auditEvents.principal, query.principal));
    if (query.server) conditions.push(eq(auditEvents.server, query.server));
    if (query.target) conditions.push(eq(auditEvents.target, query.target));
    if (query.kind) conditions.push(eq(auditEvents.kind, query.kind));
    if (query.status) conditions.push(eq(auditEvents.status, query.status));
    if (query.from) conditions.push(gte(auditEvents.at, query.from));
    if (query.to) conditions.push(lte(auditEvents.at, query.to));
    const where = conditions.length ? and(...conditions) : undefined;
    const [rows, totals] = await Promise.all([
      this.db.select().from(auditEvents).where(where).orderBy(desc(auditEvents.at), desc(auditEvents.id)).limit(query.limit).offset(query.offset),
      this.db.select({ total: count() }).from(auditEvents).where(where),
    ]);
    return {
      total: Number(totals[0]?.total ?? 0),
      events: rows.map((r) => ({
        id: r.id,
        at: r.at,
        kind: r.kind as AuditKind,
        principal: r.principal,
        sessionId: r.sessionId ?? undefined,
        channel: r.channel as AuditEvent['channel'],
        server: r.server ?? undefined,
        target: r.target,
        arguments: r.arguments ?? undefined,
        status: r.status as AuditStatus,
        error: r.error ?? undefined,
        durationMs: r.durationMs ?? undefined,
      })),
    };
  }
}

/**
 * PostgreSQL refuses NUL characters and unpaired surrogates in text and jsonb, and one such
 * string from a client would fail its whole batch at every retry: they are stored as U+FFFD.
 * `JSON.stringify` writes both as `\u` escapes (and nothing else it writes looks like them but
 * an escaped backslash before such text), so a batch without one is written as it is; only a
 * batch with one pays for the replacer, which takes JSON.stringify off its fast path.
 */
function storableJson(rows: readonly object[]): string {
  const json = JSON.stringify(rows);
  return ESCAPED_UNSTORABLE.test(json) ? JSON.stringify(rows, storable) : json;
}

const ESCAPED_UNSTORABLE = /\\u(?:0000|d[89a-f])/i;

function storable(_key: string, value: unknown): unknown {
  if (typeof value === 'string') return clean(value);
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).some((k) => clean(k) !== k)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [clean(k), v]));
  }
  return value;
}

const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function clean(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

import { bigserial, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Upstream servers registered at run time through the API (the config file's are not stored). */
export const registeredServers = pgTable('registered_servers', {
  name: text('name').primaryKey(),
  /** The server definition as validated by the config schema. */
  definition: jsonb('definition').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** One row per tool call, prompt get, resource read and admin change. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull(),
    /** `tool_call`, `prompt_get`, `resource_read` or `admin`. */
    kind: text('kind').notNull(),
    principal: text('principal').notNull(),
    sessionId: text('session_id'),
    /** Where it came in: `mcp`, `rest` or `cli`. */
    channel: text('channel').notNull(),
    server: text('server'),
    /** The tool, prompt, resource URI or admin action. */
    target: text('target').notNull(),
    arguments: jsonb('arguments'),
    /** `ok`, `error` or `denied`. */
    status: text('status').notNull(),
    error: text('error'),
    durationMs: integer('duration_ms'),
  },
  (t) => [index('audit_events_at_idx').on(t.at), index('audit_events_principal_idx').on(t.principal, t.at), index('audit_events_server_idx').on(t.server, t.at)],
);

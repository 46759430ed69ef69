import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

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

/** API keys for programs. Only a hash of the secret is kept; the key is shown once, at creation. */
export const apiKeys = pgTable(
  'api_keys',
  {
    /** Public part of the key (`cfx_<id>_<secret>`), used to find the row. */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    /** SHA-256 of the whole key, hex. The secret is 256 random bits, so a fast hash is enough. */
    hash: text('hash').notNull(),
    /** The principal the key acts as (default `key:<name>`). */
    subject: text('subject').notNull(),
    groups: jsonb('groups').$type<string[]>().notNull().default([]),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_keys_name_active_idx').on(t.name).where(sql`${t.revokedAt} is null`)],
);

/** A user's or group's access level on a server (`*` for all). */
export const accessGrants = pgTable('access_grants', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** `user` or `group`. */
  subjectType: text('subject_type').notNull(),
  subject: text('subject').notNull(),
  server: text('server').notNull(),
  /** `read` or `call`. */
  level: text('level').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Narrows a server's tools (by upstream name glob) for a user, a group or everyone. */
export const toolRules = pgTable('tool_rules', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** `user`, `group` or `everyone`. */
  subjectType: text('subject_type').notNull(),
  subject: text('subject'),
  server: text('server').notNull(),
  /** `allow` or `deny`. */
  effect: text('effect').notNull(),
  pattern: text('pattern').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * What the gateway holds as an OAuth client of upstreams: users' tokens (`kind` `token`: `owner`
 * the user, `target` the server) and its dynamic registrations at authorization servers (`kind`
 * `client`: `owner` the issuer, `target` the redirect URL registered). Secrets are only in
 * `secret`, sealed with AES-256-GCM under the key `key_id` names (see upstream/auth/token-cipher.ts).
 */
export const upstreamCredentials = pgTable(
  'upstream_credentials',
  {
    kind: text('kind').notNull(),
    owner: text('owner').notNull(),
    target: text('target').notNull(),
    /** The sealed secret part (tokens, a client secret); null when there is none. */
    secret: text('secret'),
    keyId: text('key_id'),
    /** What may be shown: a token's issuer and scope, a client's id and metadata. */
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default({}),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.owner, t.target] })],
);

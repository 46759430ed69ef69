import { CallToolResultSchema, JSONValueSchema, ToolSchema } from '@modelcontextprotocol/core';
import { z } from 'zod';

/**
 * The bodies the REST API answers with, as clients read them: the OpenAPI document's success
 * schemas (see `route-table.ts`) and the CLI's admin client parse the same definitions. Handlers
 * build their answers themselves; the API tests check those answers against these.
 */

/** A timestamp on the wire (ISO 8601), read as a `Date`. */
const Timestamp = z.iso.datetime({ offset: true }).transform((text) => new Date(text));
const UpstreamState = z.enum(['connecting', 'ready', 'degraded', 'down', 'misconfigured', 'disabled']);

export const ServerSchema = z
  .object({
    name: z.string(),
    state: UpstreamState,
    transport: z.enum(['stdio', 'streamable-http', 'sse']),
    description: z.string().optional(),
    tags: z.array(z.string()),
    toolCount: z.number().int(),
    url: z.string().optional().describe('HTTP servers, for callers that are not admins: scheme, host and port only'),
    perUser: z.literal(true).optional().describe('Each user gets an instance of their own'),
    replicas: z.array(z.looseObject({ replica: z.string(), state: UpstreamState })).optional().describe('A server with urls: its replicas (admins also see their counters)'),
    source: z.enum(['config', 'api']).optional().describe('Admins only, as are the fields below'),
    wire: z.enum(['stdio', 'streamable-http', 'sse']).optional(),
    enabled: z.boolean().optional(),
    instances: z.number().int().optional(),
    lastError: z.string().optional(),
    connectedAt: z.string().optional(),
    definition: z.looseObject({ transport: z.string() }).optional().describe('The definition, its secrets redacted'),
  })
  .describe('An upstream server; callers that are not admins see its public fields only');

export const ToolSummarySchema = z.object({
  name: z.string(),
  server: z.string().optional(),
  originalName: z.string().optional().describe("The upstream's own name for the tool"),
  title: z.string().optional(),
  description: z.string().optional(),
});

export const ToolWithRouteSchema = (ToolSchema as z.ZodObject).extend({
  route: z.looseObject({ kind: z.enum(['upstream', 'broadcast', 'tag', 'search', 'call']) }).describe('Where calls of the tool go'),
});

export const CallToolResult = CallToolResultSchema as z.ZodType;

export const AuditEventSchema = z.object({
  id: z.number().int(),
  at: Timestamp,
  kind: z.enum(['tool_call', 'prompt_get', 'resource_read', 'admin']),
  principal: z.string(),
  sessionId: z.string().optional(),
  channel: z.enum(['mcp', 'rest', 'cli']),
  server: z.string().optional(),
  target: z.string(),
  arguments: z.unknown().optional().describe('Redacted as gateway.audit.redactKeys says'),
  status: z.enum(['ok', 'error', 'denied']),
  error: z.string().optional(),
  durationMs: z.number().optional(),
});

export const MeSchema = z.object({
  principal: z.string(),
  subject: z.string(),
  email: z.string().optional(),
  groups: z.array(z.string()),
  roles: z.array(z.string()),
  scopes: z.array(z.string()),
  method: z.enum(['none', 'oauth', 'jwt', 'api_key', 'header']),
  admin: z.boolean(),
  servers: z.record(z.string(), z.enum(['read', 'call'])).describe('The servers the caller may use, with its level on each'),
});

export const GrantSchema = z.object({
  id: z.string(),
  source: z.enum(['config', 'database']),
  subjectType: z.enum(['user', 'group']),
  subject: z.string(),
  server: z.string(),
  level: z.enum(['read', 'call']),
});

export const ToolRuleSchema = z.object({
  id: z.string(),
  source: z.enum(['config', 'database']),
  subjectType: z.enum(['user', 'group', 'everyone']),
  subject: z.string().nullable(),
  server: z.string(),
  effect: z.enum(['allow', 'deny']),
  pattern: z.string(),
});

export const ApiKeyRecordSchema = z.object({
  id: z.string(),
  name: z.string(),
  subject: z.string(),
  groups: z.array(z.string()),
  createdAt: Timestamp,
  expiresAt: Timestamp.nullable(),
  revokedAt: Timestamp.nullable(),
  lastUsedAt: Timestamp.nullable(),
});

export const ConnectionSchema = z.object({
  user: z.string(),
  server: z.string(),
  createdAt: Timestamp,
  expiresAt: Timestamp.nullable(),
  scopes: z.array(z.string()),
  source: z.enum(['authorization', 'api']),
});

export const UserInstanceSchema = z.object({
  server: z.string(),
  user: z.string(),
  state: z.enum([...UpstreamState.options, 'starting']),
  pid: z.number().int().optional(),
  startedAt: z.string(),
  lastUsedAt: z.string(),
});

export const McpSessionSchema = z.object({
  id: z.string().describe('The start of the session id, enough to tell sessions apart'),
  principal: z.string(),
  client: z.object({ name: z.string(), version: z.string() }).optional().describe('The clientInfo the client sent at initialize'),
  protocolVersion: z.string().optional(),
  origin: z.enum(['opened', 'rebuilt']).describe('Opened here, or rebuilt here from the record of a session opened on another replica'),
  createdAt: z.string(),
  lastSeenAt: z.string(),
  openStreams: z.number().int(),
  activeCalls: z.number().int(),
});

/** Named in the document's `components.schemas`, and referenced wherever a body holds one. */
export const NAMED_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  Server: ServerSchema,
  ToolSummary: ToolSummarySchema,
  Tool: ToolWithRouteSchema,
  CallToolResult,
  AuditEvent: AuditEventSchema,
  Me: MeSchema,
  Grant: GrantSchema,
  ToolRule: ToolRuleSchema,
  ApiKey: ApiKeyRecordSchema,
  Connection: ConnectionSchema,
  UserInstance: UserInstanceSchema,
  McpSession: McpSessionSchema,
  // Recursive, so it must be named to be referenced at all.
  JsonValue: JSONValueSchema as z.ZodType,
};

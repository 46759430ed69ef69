import { z } from 'zod';
import type { AccessControl } from '../../auth/access-control.js';
import type { ApiKeys } from '../../auth/api-keys.js';
import type { AuditLog } from '../../observability/audit-log.js';
import type { ServerRegistry } from '../../registry/server-registry.js';
import { adminAction, callerOf, requireAdmin } from './admin-guard.js';
import { ApiError } from './api-errors.js';
import { ApiKeyRecordSchema, GrantSchema, MeSchema, ToolRuleSchema } from './response-schemas.js';
import { route, type ApiRoute } from './route-table.js';

export interface AccessRouteDeps {
  registry: ServerRegistry;
  accessControl: AccessControl;
  apiKeys?: ApiKeys | undefined;
  audit: AuditLog;
}

const IdParam = z.object({ id: z.string().min(1) });
const GrantBody = z
  .strictObject({
    user: z.string().min(1).optional(),
    group: z.string().min(1).optional(),
    server: z.string().min(1).describe('A server name or *'),
    level: z.enum(['read', 'call']).default('call'),
  })
  .refine((g) => (g.user === undefined) !== (g.group === undefined), 'name exactly one of user or group');
const ToolRuleBody = z
  .strictObject({
    user: z.string().min(1).optional(),
    group: z.string().min(1).optional(),
    server: z.string().min(1).default('*'),
    effect: z.enum(['allow', 'deny']),
    pattern: z.string().min(1).describe('Glob on the upstream tool name'),
  })
  .refine((r) => !(r.user !== undefined && r.group !== undefined), 'name at most one of user or group (neither: everyone)');
const ApiKeyBody = z.strictObject({
  name: z.string().min(1).max(100),
  subject: z.string().min(1).optional().describe('The principal the key acts as (default key:<name>)'),
  groups: z.array(z.string().min(1)).default([]),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

/** `/me`, access rules and API keys under `/api/v1`; all but `/me` need the admin role. */
export function accessRoutes(deps: AccessRouteDeps): ApiRoute[] {
  const { registry } = deps;
  const keys = () => {
    if (!deps.apiKeys) throw new ApiError(503, 'no_database', 'API keys need a database');
    return deps.apiKeys;
  };

  return [
    route({
      method: 'get',
      path: '/me',
      operationId: 'getCaller',
      tag: 'access',
      summary: 'Who the caller is and which servers it may use',
      returns: MeSchema,
      responses: { 200: 'The principal and its levels' },
      handler: async ({ c }) => {
        const { access } = callerOf(c);
        const { id, subject, email, groups, roles, scopes, method } = access.principal;
        const servers = Object.fromEntries(Object.keys(registry.all()).sort().map((name) => [name, access.level(name)]).filter(([, level]) => level !== 'none'));
        return c.json({ principal: id, subject, email, groups, roles, scopes, method, admin: access.admin, servers });
      },
    }),
    route({
      method: 'get',
      path: '/access/grants',
      operationId: 'listGrants',
      tag: 'access',
      summary: 'Access grants (user or group → server, read or call), from the config and the database',
      returns: z.object({ grants: z.array(GrantSchema) }),
      responses: { 200: '{grants}', 403: 'Not an admin' },
      handler: async ({ c }) => {
        requireAdmin(c);
        return c.json({ grants: deps.accessControl.rules().grants });
      },
    }),
    route({
      method: 'post',
      path: '/access/grants',
      operationId: 'createGrant',
      tag: 'access',
      summary: 'Grant a user or a group a level on a server (or *)',
      body: GrantBody,
      returns: GrantSchema,
      responses: { 201: 'Granted', 400: 'Invalid grant', 403: 'Not an admin', 503: 'No database' },
      handler: async ({ body, c }) => {
        const grant = await adminAction(deps.audit, c, 'access.grant', body, () =>
          deps.accessControl.addGrant({
            subjectType: body.user !== undefined ? 'user' : 'group',
            subject: (body.user ?? body.group)!,
            server: body.server,
            level: body.level,
          }),
        );
        return c.json(grant, 201);
      },
    }),
    route({
      method: 'delete',
      path: '/access/grants/:id',
      operationId: 'deleteGrant',
      tag: 'access',
      summary: 'Remove a stored grant',
      params: IdParam,
      responses: { 204: 'Removed', 403: 'Not an admin', 404: 'No such stored grant' },
      handler: async ({ params, c }) => {
        await adminAction(deps.audit, c, `access.revoke:${params.id}`, undefined, () => deps.accessControl.removeGrant(params.id));
        return c.body(null, 204);
      },
    }),
    route({
      method: 'get',
      path: '/access/tool-rules',
      operationId: 'listToolRules',
      tag: 'access',
      summary: 'Tool allow/deny rules, from the config and the database',
      returns: z.object({ toolRules: z.array(ToolRuleSchema) }),
      responses: { 200: '{toolRules}', 403: 'Not an admin' },
      handler: async ({ c }) => {
        requireAdmin(c);
        return c.json({ toolRules: deps.accessControl.rules().toolRules });
      },
    }),
    route({
      method: 'post',
      path: '/access/tool-rules',
      operationId: 'createToolRule',
      tag: 'access',
      summary: 'Allow or deny tools (glob on the upstream name) of a server for a user, a group or everyone',
      body: ToolRuleBody,
      returns: ToolRuleSchema,
      responses: { 201: 'Added', 400: 'Invalid rule', 403: 'Not an admin', 503: 'No database' },
      handler: async ({ body, c }) => {
        const rule = await adminAction(deps.audit, c, 'access.tool_rule', body, () =>
          deps.accessControl.addToolRule({
            subjectType: body.user !== undefined ? 'user' : body.group !== undefined ? 'group' : 'everyone',
            subject: body.user ?? body.group ?? null,
            server: body.server,
            effect: body.effect,
            pattern: body.pattern,
          }),
        );
        return c.json(rule, 201);
      },
    }),
    route({
      method: 'delete',
      path: '/access/tool-rules/:id',
      operationId: 'deleteToolRule',
      tag: 'access',
      summary: 'Remove a stored tool rule',
      params: IdParam,
      responses: { 204: 'Removed', 403: 'Not an admin', 404: 'No such stored rule' },
      handler: async ({ params, c }) => {
        await adminAction(deps.audit, c, `access.tool_rule_remove:${params.id}`, undefined, () => deps.accessControl.removeToolRule(params.id));
        return c.body(null, 204);
      },
    }),
    route({
      method: 'get',
      path: '/api-keys',
      operationId: 'listApiKeys',
      tag: 'access',
      summary: 'API keys (never the keys themselves)',
      returns: z.object({ apiKeys: z.array(ApiKeyRecordSchema) }),
      responses: { 200: '{apiKeys}', 403: 'Not an admin', 503: 'No database' },
      handler: async ({ c }) => {
        requireAdmin(c);
        return c.json({ apiKeys: await keys().list() });
      },
    }),
    route({
      method: 'post',
      path: '/api-keys',
      operationId: 'createApiKey',
      tag: 'access',
      summary: 'Create an API key; the key is in this response only',
      body: ApiKeyBody,
      returns: ApiKeyRecordSchema.extend({ key: z.string().describe('The key itself: shown in this answer only') }),
      responses: { 201: '{key, ...record}', 403: 'Not an admin', 409: 'An active key has the name', 503: 'No database' },
      handler: async ({ body, c }) => {
        const created = await adminAction(deps.audit, c, `api_keys.create:${body.name}`, body, () =>
          keys().create({ name: body.name, subject: body.subject, groups: body.groups, expiresAt: body.expiresAt ? new Date(body.expiresAt) : undefined }),
        );
        return c.json({ key: created.key, ...created.record }, 201);
      },
    }),
    route({
      method: 'delete',
      path: '/api-keys/:id',
      operationId: 'revokeApiKey',
      tag: 'access',
      summary: 'Revoke an API key (by id or name)',
      params: IdParam,
      returns: ApiKeyRecordSchema,
      responses: { 200: 'The revoked key', 403: 'Not an admin', 404: 'No such active key' },
      handler: async ({ params, c }) => {
        const revoked = await adminAction(deps.audit, c, `api_keys.revoke:${params.id}`, undefined, () => keys().revoke(params.id));
        if (!revoked) throw new ApiError(404, 'not_found', `no active API key "${params.id}"`);
        return c.json(revoked);
      },
    }),
  ];
}

import type { Context } from 'hono';
import { z } from 'zod';
import { identityKey } from '../../auth/identity-key.js';
import { isReplicated, type HttpServerConfig, type OAuth2AuthConfig } from '../../config/schema.js';
import type { AuditLog } from '../../observability/audit-log.js';
import type { ServerRegistry } from '../../registry/server-registry.js';
import { UpstreamAuthError } from '../../upstream/auth/upstream-auth.js';
import type { UserConnection, UserIdentities } from '../../upstream/auth/user-identity.js';
import { adminAction, callerOf } from './admin-guard.js';
import { ApiError } from './api-errors.js';
import { ConnectionSchema } from './response-schemas.js';
import { route, type ApiRoute } from './route-table.js';

export interface ConnectionRouteDeps {
  registry: ServerRegistry;
  /** Users' authorisations of upstreams; without them (no database) these routes answer 503. */
  users?: UserIdentities | undefined;
  audit: AuditLog;
}

const ServerParam = z.object({ server: z.string().min(1) });
const UserQuery = z.object({ user: z.string().min(1).optional().describe("Admins: another user's connections (* for everyone's)") });
const SuppliedTokenBody = z.strictObject({
  server: z.string().min(1),
  accessToken: z.string().min(1).max(16_384),
  refreshToken: z.string().min(1).max(16_384).optional(),
  /** Seconds until the access token expires (as a token endpoint says it). */
  expiresIn: z.number().int().positive().max(10 * 365 * 86_400).optional(),
});

/**
 * Users' connections to upstreams that act for each user (`auth.identity: user`) under
 * `/api/v1`: listing and revoking their own (admins: anyone's), starting an authorization,
 * and handing in a token obtained elsewhere (`POST /sessions`). No answer contains a token.
 */
export function connectionRoutes(deps: ConnectionRouteDeps): ApiRoute[] {
  const users = () => {
    if (!deps.users) throw new ApiError(503, 'no_database', "users' upstream connections need a database");
    return deps.users;
  };
  /** A server the caller may see that acts for each user. */
  const userServer = (c: Context, name: string): { config: HttpServerConfig; auth: OAuth2AuthConfig } => {
    const config = deps.registry.definition(name);
    if (!config || !callerOf(c).access.visible(name)) throw new ApiError(404, 'not_found', `no server named "${name}"`);
    if (config.transport === 'stdio' || isReplicated(config) || config.auth?.method !== 'oauth2' || config.auth.identity !== 'user') {
      throw new ApiError(400, 'not_per_user', `"${name}" does not act for each user (its auth is not oauth2 with identity: user)`);
    }
    return { config, auth: config.auth };
  };
  /** Whose connections a request addresses: the caller's own, or (admins only, audited) the one `?user=` names. */
  const subject = async <T>(c: Context, user: string | undefined, action: string, run: (user: string | undefined) => Promise<T>): Promise<T> => {
    const self = callerOf(c).access.principal.id;
    if (user === undefined || identityKey(user, 'user') === self) return run(self);
    return adminAction(deps.audit, c, action, { user }, () => run(user === '*' ? undefined : identityKey(user, 'user')));
  };

  return [
    route({
      method: 'get',
      path: '/connections',
      operationId: 'listConnections',
      tag: 'connections',
      summary: "The caller's connections to per-user upstreams (server, createdAt, expiresAt, scopes); never a token",
      query: UserQuery,
      returns: z.object({ connections: z.array(ConnectionSchema) }),
      responses: { 200: '{connections}', 403: 'Another user named by a non-admin', 503: 'No database' },
      handler: async ({ query, c }) => {
        const connections = await subject(c, query.user, 'connections.list', (user) => users().connections(user));
        return c.json({ connections: connections.map(view) });
      },
    }),
    route({
      method: 'post',
      path: '/connections/:server',
      operationId: 'startConnection',
      tag: 'connections',
      summary: 'Start an authorization of the server for the caller; answers the URL to open',
      params: ServerParam,
      returns: z.object({ server: z.string(), authorizationUrl: z.url() }),
      responses: { 200: '{server, authorizationUrl}', 400: 'Not a per-user server', 404: 'No such server', 502: 'The authorization could not be started', 503: 'No database' },
      handler: async ({ params, c }) => {
        const { config, auth } = userServer(c, params.server);
        let started;
        try {
          started = await users().startAuthorization({ principal: callerOf(c).access.principal }, params.server, config, auth);
        } catch (error) {
          if (error instanceof UpstreamAuthError) throw new ApiError(502, `upstream_auth_${error.kind.replace('-', '_')}`, error.message, { server: params.server });
          throw error;
        }
        return c.json({ server: params.server, authorizationUrl: started.authorizationUrl });
      },
    }),
    route({
      method: 'delete',
      path: '/connections/:server',
      operationId: 'revokeConnection',
      tag: 'connections',
      summary: "Revoke the caller's connection to the server (admins: ?user=)",
      params: ServerParam,
      query: UserQuery,
      responses: { 204: 'Revoked', 403: 'Another user named by a non-admin', 404: 'No such connection', 503: 'No database' },
      handler: async ({ params, query, c }) => {
        if (query.user === '*') throw new ApiError(400, 'invalid_query', 'revoke names one user');
        const removed = await subject(c, query.user, `connections.revoke:${params.server}`, (user) => users().revoke(user!, params.server));
        if (!removed) throw new ApiError(404, 'not_found', `no connection to "${params.server}"`);
        return c.body(null, 204);
      },
    }),
    route({
      method: 'post',
      path: '/sessions',
      operationId: 'supplyToken',
      tag: 'connections',
      summary: "Hand in the caller's own token for a per-user server, used as an authorised one would be",
      body: SuppliedTokenBody,
      returns: ConnectionSchema,
      responses: { 201: 'The connection (never the token)', 400: 'Not a per-user server', 404: 'No such server', 503: 'No database' },
      handler: async ({ body, c }) => {
        userServer(c, body.server);
        const connection = await users().supply({ principal: callerOf(c).access.principal }, body.server, { accessToken: body.accessToken, refreshToken: body.refreshToken, expiresIn: body.expiresIn });
        return c.json(view(connection), 201);
      },
    }),
  ];
}

function view(connection: UserConnection) {
  return {
    user: connection.user,
    server: connection.server,
    createdAt: connection.createdAt.toISOString(),
    expiresAt: connection.expiresAt?.toISOString() ?? null,
    scopes: connection.scopes,
    source: connection.source,
  };
}

import { z } from 'zod';
import { identityKey } from '../../auth/identity-key.js';
import type { AuditLog } from '../../observability/audit-log.js';
import type { UpstreamPool } from '../../upstream/upstream-pool.js';
import { adminAction, requireAdmin } from './admin-guard.js';
import { ApiError } from './api-errors.js';
import { UserInstanceSchema } from './response-schemas.js';
import { route, type ApiRoute } from './route-table.js';

export interface InstanceRouteDeps {
  upstreams: UpstreamPool;
  audit: AuditLog;
}

const UserParam = z.object({ user: z.string().min(1).describe('The principal id (an email, or the subject)') });

/**
 * Users' own instances of per-user servers (`shared: false`, or acting with each user's
 * identity) under `/api/v1/sessions`: listed, and stopped for one user, by admins. (`POST
 * /sessions`, a user handing in an upstream token, is in connection-routes.ts.)
 */
export function instanceRoutes(deps: InstanceRouteDeps): ApiRoute[] {
  return [
    route({
      method: 'get',
      path: '/sessions',
      operationId: 'listUserInstances',
      tag: 'instances',
      summary: "Running per-user upstream instances (server, user, state, pid, startedAt, lastUsedAt); never a user's values",
      returns: z.object({ sessions: z.array(UserInstanceSchema) }),
      responses: { 200: '{sessions}', 403: 'Not an admin' },
      handler: async ({ c }) => {
        requireAdmin(c);
        const sessions = deps.upstreams.instances().sort((a, b) => a.user.localeCompare(b.user) || a.server.localeCompare(b.server));
        return c.json({ sessions });
      },
    }),
    route({
      method: 'delete',
      path: '/sessions/:user',
      operationId: 'stopUserInstances',
      tag: 'instances',
      summary: "Stop every instance of one user's (a later call of theirs starts a fresh one)",
      params: UserParam,
      returns: z.object({ user: z.string(), stopped: z.number().int() }),
      responses: { 200: '{user, stopped}', 403: 'Not an admin', 404: 'The user has no instance' },
      handler: async ({ params, c }) => {
        const user = identityKey(params.user, 'user');
        const stopped = await adminAction(deps.audit, c, `sessions.stop:${user}`, undefined, () => deps.upstreams.stopUser(user));
        if (stopped === 0) throw new ApiError(404, 'not_found', `user ${user} has no running instance`);
        return c.json({ user, stopped });
      },
    }),
  ];
}

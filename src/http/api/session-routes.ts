import { z } from 'zod';
import type { SessionRegistry } from '../../gateway/session-registry.js';
import { requireAdmin } from './admin-guard.js';
import { McpSessionSchema } from './response-schemas.js';
import { route, type ApiRoute } from './route-table.js';

export interface SessionRouteDeps {
  sessions: SessionRegistry;
}

/** The part of a session id shown: enough to tell sessions apart, too little to address one. */
const SHOWN_ID_CHARACTERS = 8;

/**
 * The MCP sessions clients hold open with this replica (`/api/v1/mcp-sessions`), for admins:
 * who opened each, with which client, and how busy it is. Session ids are shown shortened: the
 * principal that opened a session is the only one that may use it, but its id is still theirs.
 */
export function sessionRoutes(deps: SessionRouteDeps): ApiRoute[] {
  return [
    route({
      method: 'get',
      path: '/mcp-sessions',
      operationId: 'listMcpSessions',
      tag: 'sessions',
      summary: "Open MCP sessions held by this replica (principal, client, protocol, ages, streams, calls in flight); never a session's full id",
      returns: z.object({ sessions: z.array(McpSessionSchema) }),
      responses: { 200: '{sessions}', 403: 'Not an admin' },
      handler: async ({ c }) => {
        requireAdmin(c);
        const sessions = [...deps.sessions.all()]
          .map((s) => {
            const client = s.server.getClientVersion();
            return {
              id: `${s.id.slice(0, SHOWN_ID_CHARACTERS)}…`,
              principal: s.principal,
              client: client ? { name: client.name, version: client.version } : undefined,
              protocolVersion: s.server.getNegotiatedProtocolVersion(),
              origin: s.origin,
              createdAt: new Date(s.createdAt).toISOString(),
              lastSeenAt: new Date(s.lastSeen).toISOString(),
              openStreams: s.openStreams,
              activeCalls: s.activeCalls,
            };
          })
          .sort((a, b) => a.principal.localeCompare(b.principal) || a.createdAt.localeCompare(b.createdAt));
        return c.json({ sessions });
      },
    }),
  ];
}

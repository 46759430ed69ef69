import { Hono } from 'hono';
import { z } from 'zod';
import type { ProxyList } from '../../limits/client-address.js';
import { GATEWAY_VERSION } from '../../version.js';
import { remoteAddress } from '../caller.js';
import { requestOrigin } from '../forwarded-origin.js';
import { ApiError, apiErrorResponse } from './api-errors.js';
import { mountRoutes, openApiDocument, route, withServer, type ApiInfo } from './route-table.js';
import { apiRoutes, type ApiDeps } from './routes.js';

export const API_BASE = '/api/v1';

const INFO: ApiInfo = {
  title: 'Conflux REST API',
  version: GATEWAY_VERSION,
  description:
    "Conflux's upstream servers, tools, access rules, API keys and audit trail. Every operation takes the same credentials as `/mcp`; a gateway with `gateway.auth: none` (local use) asks for none. Changes need the admin role.",
  license: { name: 'MIT', identifier: 'MIT' },
  tags: [
    { name: 'servers', description: 'Upstream MCP servers: their state, and (admins) registering and changing them' },
    { name: 'tools', description: 'The merged tool catalog, and calling tools over plain HTTP' },
    { name: 'audit', description: 'The audit trail of calls and admin changes' },
    { name: 'access', description: 'Who the caller is, access grants, tool rules and API keys' },
    { name: 'connections', description: "Users' own authorisations of upstreams that act for each user" },
    { name: 'instances', description: 'Per-user instances of upstream servers' },
    { name: 'sessions', description: 'The MCP sessions clients hold open' },
    { name: 'meta', description: 'This document' },
  ],
};

export interface ApiOptions {
  maxJsonDepth: number;
  /** Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` name the origin the document gives (`gateway.trustedProxies`). */
  trustedProxies?: ProxyList | undefined;
}

/**
 * The REST API: JSON in and out, zod-validated, described at /api/v1/openapi.json. Host,
 * Origin, content type and body size are checked by the guards at the root of the app.
 */
export function createApiApp(deps: ApiDeps, options: ApiOptions): Hono {
  const app = new Hono();
  let document: Record<string, unknown> = {};
  const routes = [
    ...apiRoutes(deps),
    route({
      method: 'get',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      tag: 'meta',
      summary: 'This OpenAPI 3.1 document',
      returns: z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) }),
      responses: { 200: 'The document, its server the origin the request addressed' },
      handler: async ({ c }) => c.json(withServer(document, requestOrigin(c.req.url, c.req.raw.headers, remoteAddress(c), options.trustedProxies))),
    }),
  ];
  document = openApiDocument(routes, INFO, API_BASE);
  mountRoutes(app, routes, { maxJsonDepth: options.maxJsonDepth });
  app.notFound((c) => apiErrorResponse(c, new ApiError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`), deps.logger));
  app.onError((error, c) => {
    const response = apiErrorResponse(c, error, deps.logger);
    // Unexpected errors (500) are logged by the mapping, under the incident id the client reads.
    if (response.status > 500 && response.status !== 502 && response.status !== 503 && response.status !== 504) {
      deps.logger.error({ err: error }, 'REST request failed');
    }
    return response;
  });
  return app;
}

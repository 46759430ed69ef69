import { Hono } from 'hono';
import { GATEWAY_VERSION } from '../../version.js';
import { ApiError, apiErrorResponse } from './api-errors.js';
import { mountRoutes, openApiDocument } from './route-table.js';
import { apiRoutes, type ApiDeps } from './routes.js';

export const API_BASE = '/api/v1';

/**
 * The REST API: JSON in and out, zod-validated, described at /api/v1/openapi.json. Host,
 * Origin, content type and body size are checked by the guards at the root of the app.
 */
export function createApiApp(deps: ApiDeps, limits: { maxJsonDepth: number }): Hono {
  const app = new Hono();
  const routes = apiRoutes(deps);
  const document = openApiDocument(routes, { title: 'Conflux REST API', version: GATEWAY_VERSION }, API_BASE);
  app.get('/openapi.json', (c) => c.json(document));
  mountRoutes(app, routes, limits);
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

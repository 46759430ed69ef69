import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { GatewayMetrics } from '../observability/metrics.js';

/** The label of a request that no route (only app-wide middleware) matched. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Methods counted by name; anything else a client invents is counted as `other`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Counts and times every request by the route pattern it addressed (`/api/v1/servers/:name`,
 * never the path itself), so that made-up paths and names cannot multiply the series. Mounted
 * before the guards, so their refusals are counted under the route they refused.
 */
export function requestMetrics(metrics: Pick<GatewayMetrics, 'httpRequests' | 'httpDuration'>): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    // Errors never reach here: hono answers them (onError) inside `next`, so the status is final.
    await next();
    const labels = { route: routeLabel(c), method: KNOWN_METHODS.has(c.req.method) ? c.req.method : 'other' };
    metrics.httpRequests.inc({ ...labels, status: String(c.res.status) });
    metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
  };
}

/**
 * The pattern of the last route the request matched. Wildcard paths are the app-wide
 * middleware (`*`, `/api/*`, `/.well-known/*`): matching only those, a request found no route.
 */
function routeLabel(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const path = routes[i]!.path;
    if (!path.includes('*')) return path;
  }
  return UNMATCHED_ROUTE;
}

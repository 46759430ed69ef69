import { Hono } from 'hono';
import { bodyLimit } from './body-limit.js';
import type { Logger } from 'pino';
import type { SessionRegistry } from '../gateway/session-registry.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { apiErrorResponse } from './api/api-errors.js';
import { AuthFailure } from '../auth/auth-failure.js';
import { callerMiddleware, type CallerDeps, type CallerEnv } from './caller.js';
import { BAD_REQUEST, INVALID_REQUEST, jsonRpcError, UNAUTHORIZED } from './json-rpc-errors.js';
import { mcpEndpoint, type FastPaths, type McpEndpointLimits } from './mcp-endpoint.js';
import { originGuard, type OriginGuardOptions } from './origin-guard.js';

export interface HttpAppDeps {
  sessions: SessionRegistry;
  upstreams: UpstreamPool;
  logger: Logger;
  guard: OriginGuardOptions;
  maxBodyBytes: number;
  limits: McpEndpointLimits;
  fast?: FastPaths | undefined;
  rateLimits?: RateLimits | undefined;
  /** Authentication and access rules (the rate limits above are applied after them). */
  auth: Omit<CallerDeps, 'rateLimits'>;
  metrics: GatewayMetrics;
  /** An extra readiness check (the database), throwing when not ready. */
  ready?: (() => Promise<void>) | undefined;
}

/** The gateway's HTTP surface: `/mcp` (Streamable HTTP), `/health`, `/ready`, `/metrics`, `/servers`; the REST API is mounted by the caller. */
export function createHttpApp(deps: HttpAppDeps): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  const callerDeps: CallerDeps = { ...deps.auth, rateLimits: deps.rateLimits };

  app.use(
    '/mcp',
    originGuard(deps.guard),
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: () => jsonRpcError(413, INVALID_REQUEST, `Request body larger than ${deps.maxBodyBytes} bytes`),
    }),
    callerMiddleware(callerDeps, (_c, error) => {
      if (error instanceof AuthFailure) return jsonRpcError(error.status, UNAUTHORIZED, error.message);
      const response = jsonRpcError(429, BAD_REQUEST, error.message);
      response.headers.set('Retry-After', String(error.retryAfterSeconds));
      return response;
    }),
  );
  app.all('/mcp', mcpEndpoint(deps.sessions, deps.limits, deps.fast));
  app.use(
    '/api/*',
    callerMiddleware(callerDeps, (c, error) => apiErrorResponse(c, error)),
  );

  app.get('/health', (c) => {
    const servers = Object.fromEntries(
      deps.upstreams.statuses().map((s) => [s.name, { state: s.state, tools: s.toolCount, ...(s.lastError ? { error: s.lastError } : {}) }]),
    );
    return c.json({ status: 'ok', sessions: deps.sessions.size, servers });
  });

  // Readiness: the database answers and every `required` upstream is connected.
  app.get('/ready', async (c) => {
    const waiting = deps.upstreams
      .list()
      .filter((u) => u.config.required && u.config.enabled && u.state !== 'ready')
      .map((u) => u.name);
    const database = await deps.ready?.().then(
      () => 'ok',
      (error: Error) => error.message,
    );
    const ready = waiting.length === 0 && (database === undefined || database === 'ok');
    return c.json({ ready, ...(waiting.length ? { waiting } : {}), ...(database ? { database } : {}) }, ready ? 200 : 503);
  });

  app.get('/metrics', async (c) => {
    c.header('content-type', deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });

  app.use('/servers', callerMiddleware(callerDeps, (c, error) => apiErrorResponse(c, error)));
  app.get('/servers', (c) => {
    const { access } = c.get('caller');
    return c.json({ servers: deps.upstreams.statuses().filter((s) => access.visible(s.name)) });
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `No route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((error, c) => {
    if (c.req.path.startsWith('/api/')) return apiErrorResponse(c, error);
    deps.logger.error({ err: error, path: c.req.path }, 'unhandled error in request');
    return c.json({ error: { code: 'internal', message: 'Internal server error' } }, 500);
  });
  return app;
}

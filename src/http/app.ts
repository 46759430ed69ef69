import { Hono, type MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { CredentialBoundStreams } from '../gateway/credential-bound-streams.js';
import type { SessionRegistry } from '../gateway/session-registry.js';
import { reportIncident } from '../gateway/error-mapping.js';
import type { LimiterHealth } from '../limits/rate-limiter.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { publicServerView } from '../registry/server-view.js';
import { apiErrorResponse } from './api/api-errors.js';
import { callerMiddleware, type CallerDeps, type CallerEnv } from './caller.js';
import { databaseReadiness } from './database-readiness.js';
import { jsonRpcRefusal } from './json-rpc-errors.js';
import { mcpEndpoint, type FastPaths, type McpEndpointLimits } from './mcp-endpoint.js';
import type { ModernRequests } from './modern-requests.js';
import { MESSAGES_PATH, SSE_PATH, sseMessageEndpoint, sseStreamEndpoint } from './sse-endpoint.js';
import { bodyLimit } from './guards/body-limit.js';
import { hostOriginGuard, type HostOriginGuardOptions } from './guards/host-origin.js';
import { jsonContentTypeGuard } from './guards/json-content-type.js';
import { refusal } from './guards/refusal.js';
import { indexPage } from './index-page.js';
import { requestMetrics } from './request-metrics.js';
import { GATEWAY_VERSION } from '../version.js';

export interface HttpAppDeps {
  sessions: SessionRegistry;
  upstreams: UpstreamPool;
  logger: Logger;
  guard: HostOriginGuardOptions;
  /** Largest body on `/mcp` (and `/messages`), and on every other route (the REST API). */
  maxBodyBytes: { mcp: number; api: number };
  limits: McpEndpointLimits;
  fast?: FastPaths | undefined;
  /** Serves 2026-07-28 requests on `/mcp`; without it every request is taken for 2025 traffic. */
  modern?: ModernRequests | undefined;
  /** Open GET streams, ended when the credential that opened them ends. */
  streams?: CredentialBoundStreams | undefined;
  rateLimits?: RateLimits | undefined;
  /** Authentication and access rules (the rate limits above are applied after them). */
  auth: Omit<CallerDeps, 'rateLimits'>;
  metrics: GatewayMetrics;
  /** An extra readiness check (the database), throwing when not ready. */
  ready?: (() => Promise<void>) | undefined;
  /** The rate limiter's backend, for `/ready` (Redis may be unavailable). */
  limiterHealth?: (() => Promise<LimiterHealth>) | undefined;
  /** Where sessions are shared and whether it answers, reported by `/ready` (new sessions need it; readiness does not). */
  sessionState?: (() => Promise<{ backend: 'memory' | 'redis'; state: 'ok' | 'unavailable' }>) | undefined;
  /** Where the operator console is served, if it is: the index page links to it. */
  consolePath?: string | undefined;
}

/**
 * The gateway's HTTP surface: `/` (what this is), `/mcp` (Streamable HTTP), `/sse` + `/messages` (HTTP+SSE), `/health`, `/ready`, `/metrics`,
 * `/servers`; the REST API and the discovery documents are mounted by the caller, after the
 * guards, which are registered first so that they run for every route there is or will be.
 */
export function createHttpApp(deps: HttpAppDeps): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  const callerDeps: CallerDeps = { ...deps.auth, rateLimits: deps.rateLimits };

  app.use('*', requestMetrics(deps.metrics), hostOriginGuard(deps.guard), jsonContentTypeGuard(), bodyLimitFor(deps.maxBodyBytes));
  app.get('/', indexPage({ version: GATEWAY_VERSION, consolePath: deps.consolePath }));
  // The same authentication for every MCP wire, its refusals in JSON-RPC.
  const mcpCaller = callerMiddleware(callerDeps, (_c, error) => jsonRpcRefusal(error));
  app.use('/mcp', mcpCaller);
  app.all('/mcp', mcpEndpoint(deps.sessions, deps.limits, deps.fast, deps.streams, deps.modern));
  // The 2024-11-05 HTTP+SSE wire, for clients that speak only that.
  const sse = { sessions: deps.sessions, limits: deps.limits, streams: deps.streams };
  app.use(SSE_PATH, mcpCaller);
  app.get(SSE_PATH, sseStreamEndpoint(sse));
  app.use(MESSAGES_PATH, mcpCaller);
  app.post(MESSAGES_PATH, sseMessageEndpoint({ ...sse, maxJsonDepth: deps.limits.maxJsonDepth }));
  app.use(
    '/api/*',
    callerMiddleware(callerDeps, (c, error) => apiErrorResponse(c, error, deps.logger)),
  );

  // Unauthenticated: states and counts only. Error texts (which may quote an upstream's
  // stderr) are for authenticated callers of /servers and the REST API.
  app.get('/health', (c) => {
    const servers = Object.fromEntries(deps.upstreams.statuses().map((s) => [s.name, { state: s.state, tools: s.toolCount }]));
    // Copies held here: sessions opened here and those opened elsewhere that this replica served.
    return c.json({ status: 'ok', sessions: deps.sessions.size, servers });
  });

  // Readiness: the database answers, every `required` upstream is connected, and Redis answers
  // when requests are refused without it (failClosed; under failOpen it is only reported).
  const databaseReady = deps.ready && databaseReadiness(deps.ready, deps.logger);
  app.get('/ready', async (c) => {
    const waiting = deps.upstreams
      .list()
      .filter((u) => u.config.required && u.config.enabled && u.state !== 'ready')
      .map((u) => u.name);
    const database = await databaseReady?.();
    const limiter = await deps.limiterHealth?.();
    const redis = limiter?.backend === 'redis' ? limiter.state : undefined;
    const sessionState = await deps.sessionState?.();
    // Shown unless it is this process's own memory, which always answers.
    const sessions = sessionState && (sessionState.backend !== 'memory' || sessionState.state !== 'ok') ? sessionState : undefined;
    // The session state is reported, not required: without it the sessions held here are still
    // served, and each request that needs it answers 503 itself.
    const ready = waiting.length === 0 && (database === undefined || database === 'ok') && !limiter?.refusing;
    return c.json(
      { ready, ...(waiting.length ? { waiting } : {}), ...(database ? { database } : {}), ...(redis ? { redis } : {}), ...(sessions ? { sessions } : {}) },
      ready ? 200 : 503,
    );
  });

  app.get('/metrics', async (c) => {
    c.header('content-type', deps.metrics.registry.contentType);
    return c.body(await deps.metrics.scrape());
  });

  app.use('/servers', callerMiddleware(callerDeps, (c, error) => apiErrorResponse(c, error, deps.logger)));
  app.get('/servers', (c) => {
    const { access } = c.get('caller');
    const visible = deps.upstreams.statuses().filter((s) => access.visible(s.name));
    // Admins get the full status (its lastError is stored redacted); others what server-view.ts allows.
    return c.json({ servers: access.admin ? visible : visible.map((s) => publicServerView(s, deps.upstreams.get(s.name)?.config)) });
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `No route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((error, c) => {
    if (c.req.path.startsWith('/api/')) return apiErrorResponse(c, error, deps.logger);
    const { incident } = reportIncident(error, deps.logger, { method: c.req.method, path: c.req.path });
    return c.json({ error: { code: 'internal', message: `Internal server error (incident ${incident})`, details: { incident } } }, 500);
  });
  return app;
}

/** The body limit of the surface a request addresses, judged before anything reads the body. */
function bodyLimitFor(max: { mcp: number; api: number }) {
  const limits = Object.fromEntries(
    (['mcp', 'api'] as const).map((surface) => [
      surface,
      bodyLimit({
        maxSize: max[surface],
        onError: (c) => refusal(c, 413, 'payload_too_large', `Request body larger than ${max[surface]} bytes`),
      }),
    ]),
  ) as Record<'mcp' | 'api', ReturnType<typeof bodyLimit>>;
  return ((c, next) => (c.req.path === '/mcp' || c.req.path === MESSAGES_PATH ? limits.mcp : limits.api)(c, next)) satisfies MiddlewareHandler;
}

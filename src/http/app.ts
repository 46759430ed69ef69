import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { SessionRegistry } from '../gateway/session-registry.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { INVALID_REQUEST, jsonRpcError } from './json-rpc-errors.js';
import { mcpEndpoint } from './mcp-endpoint.js';
import { originGuard, type OriginGuardOptions } from './origin-guard.js';

export interface HttpAppDeps {
  sessions: SessionRegistry;
  upstreams: UpstreamPool;
  logger: Logger;
  guard: OriginGuardOptions;
  maxBodyBytes: number;
  /** An extra readiness check (the database), throwing when not ready. */
  ready?: (() => Promise<void>) | undefined;
}

/** The gateway's HTTP surface: `/mcp` (Streamable HTTP), `/health` and `/servers`. */
export function createHttpApp(deps: HttpAppDeps): Hono {
  const app = new Hono();

  app.use(
    '/mcp',
    originGuard(deps.guard),
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: () => jsonRpcError(413, INVALID_REQUEST, `Request body larger than ${deps.maxBodyBytes} bytes`),
    }),
  );
  app.all('/mcp', mcpEndpoint(deps.sessions));

  app.get('/health', (c) => {
    const servers = Object.fromEntries(
      deps.upstreams.statuses().map((s) => [s.name, { state: s.state, tools: s.toolCount, ...(s.lastError ? { error: s.lastError } : {}) }]),
    );
    return c.json({ status: 'ok', sessions: deps.sessions.size, servers });
  });

  // Readiness: every `required` upstream is connected.
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

  app.get('/servers', (c) => c.json({ servers: deps.upstreams.statuses() }));

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `No route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((error, c) => {
    deps.logger.error({ err: error, path: c.req.path }, 'unhandled error in request');
    return c.json({ error: { code: 'internal', message: 'Internal server error' } }, 500);
  });
  return app;
}

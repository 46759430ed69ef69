import type { Hono } from 'hono';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { LiveCatalog } from './catalog/live-catalog.js';
import type { Config, ServerConfig } from './config/schema.js';
import { SessionRegistry } from './gateway/session-registry.js';
import { createSessionServer } from './gateway/session-server.js';
import { CallTracker } from './gateway/call-tracker.js';
import { detachedCall } from './gateway/forward.js';
import { ResourceSubscriptions } from './gateway/resource-subscriptions.js';
import { callTool } from './gateway/tool-calls.js';
import { UpstreamRelay } from './gateway/upstream-relay.js';
import { createHttpApp } from './http/app.js';
import { listen, type Listening } from './http/listen.js';
import { ChildProcessGroups } from './upstream/child-processes.js';
import { UpstreamPool } from './upstream/upstream-pool.js';
import type { CallToolRequest, CallToolResult } from '@modelcontextprotocol/sdk/types.js';

export interface ConfluxDeps {
  logger: Logger;
}

export interface Conflux {
  readonly config: Config;
  readonly upstreams: UpstreamPool;
  readonly catalog: LiveCatalog;
  readonly sessions: SessionRegistry;
  readonly app: Hono;
  /** Starts connecting every enabled upstream (in parallel, without waiting for them). */
  start(): Promise<void>;
  /** Serves HTTP; defaults come from the config's `gateway` section. */
  listen(host?: string, port?: number): Promise<{ url: string; port: number }>;
  /** Replaces the set of upstream servers, touching only those that changed. */
  applyServers(servers: Readonly<Record<string, ServerConfig>>): Promise<void>;
  /** The gateway's routing of one tool call, without HTTP (used by the CLI). */
  callTool(params: CallToolRequest['params'], signal?: AbortSignal): Promise<CallToolResult>;
  /** Stops HTTP, closes sessions, stops upstreams and their processes. */
  stop(): Promise<void>;
}

/** The composition root: builds every part from the config. Nothing here is a module singleton. */
export function createConflux(config: Config, deps: ConfluxDeps): Conflux {
  const { logger } = deps;
  const settings = config.gateway;
  const groups = new ChildProcessGroups();
  const catalog = new LiveCatalog({ exposure: settings.exposure, broadcasts: settings.broadcast.enabled });
  const tracker = new CallTracker();
  const limit = pLimit(settings.broadcast.concurrency);
  const sessions: SessionRegistry = new SessionRegistry({
    logger,
    idleMs: settings.sessionIdleSeconds * 1000,
    createServer: () => createSessionServer({ catalog, upstreams, tracker, sessions, subscriptions, limit, pageSize: settings.pageSize }),
    onClosed: (session) => void subscriptions.release(session),
  });
  const upstreams = new UpstreamPool({
    logger,
    groups,
    reconnect: settings.reconnect,
    events: new UpstreamRelay(tracker, sessions),
  });
  const subscriptions = new ResourceSubscriptions(upstreams);
  let currentServers: Readonly<Record<string, ServerConfig>> = config.servers;
  let listening: Listening | undefined;
  let bindHost = settings.host;

  upstreams.onChange(() => {
    const changes = catalog.update(
      upstreams.list().map((u) => ({
        server: u.name,
        prefix: u.config.prefix ?? u.name,
        separator: u.config.separator,
        tags: u.config.tags,
        filter: u.config.tools,
        tools: u.tools,
        prompts: u.prompts,
        resources: u.resources,
        templates: u.resourceTemplates,
      })),
    );
    if (changes.tools || changes.prompts || changes.resources) {
      logger.info({ tools: catalog.current.tools.length, changes }, 'catalog changed');
      sessions.notifyListsChanged(changes);
    }
  });

  const app = createHttpApp({
    sessions,
    upstreams,
    logger,
    maxBodyBytes: settings.maxBodyBytes,
    guard: {
      get bindHost() {
        return bindHost;
      },
      allowedHosts: settings.allowedHosts,
      allowedOrigins: settings.allowedOrigins,
    },
  });

  return {
    config,
    upstreams,
    catalog,
    sessions,
    app,
    async start() {
      groups.installExitHook();
      await upstreams.apply(currentServers);
    },
    async listen(host = settings.host, port = settings.port) {
      bindHost = host;
      listening = await listen(app, host, port);
      const shownHost = host.includes(':') ? `[${host}]` : host;
      return { url: `http://${shownHost}:${listening.port}/mcp`, port: listening.port };
    },
    async applyServers(servers) {
      currentServers = servers;
      await upstreams.apply(servers);
    },
    callTool: (params, signal) => callTool({ catalog, upstreams, tracker, limit }, params, detachedCall(signal)),
    async stop() {
      await listening?.close();
      await sessions.closeAll();
      await upstreams.stop();
      groups.removeExitHook();
    },
  };
}

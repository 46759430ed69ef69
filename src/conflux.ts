import { createMcpHandler, InMemoryServerEventBus, type CallToolRequest, type CallToolResult } from '@modelcontextprotocol/server';
import type { Hono } from 'hono';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { AccessControl } from './auth/access-control.js';
import { fullAccess } from './auth/access-policy.js';
import { ApiKeys } from './auth/api-keys.js';
import { Authenticator } from './auth/authenticator.js';
import { TrustedProxies } from './auth/trusted-proxies.js';
import { OAuthResourceServer } from './auth/oauth-resource-server.js';
import { ANONYMOUS } from './auth/principal.js';
import { LiveCatalog } from './catalog/live-catalog.js';
import type { Config } from './config/schema.js';
import { watchConfigFile, type ConfigWatch, type ReloadResult } from './config/watch.js';
import { CallTracker } from './gateway/call-tracker.js';
import { CredentialBoundStreams } from './gateway/credential-bound-streams.js';
import { detachedCall } from './gateway/forward.js';
import { PlainToolCalls } from './gateway/plain-tool-calls.js';
import { SessionlessToolCalls } from './gateway/sessionless-tool-calls.js';
import { ResourceSubscriptions } from './gateway/resource-subscriptions.js';
import { SessionRegistry } from './gateway/session-registry.js';
import { accessIn, listedAsIs } from './gateway/mcp-handlers.js';
import { ModernCallBridge } from './gateway/modern-call-bridge.js';
import { createRequestServer, createSessionServer, mergedCapabilities, type SessionServerDeps } from './gateway/session-server.js';
import { TaskListen } from './gateway/task-listen.js';
import { TaskRelay } from './gateway/task-relay.js';
import { InMemoryTaskRouteStore } from './gateway/task-routes.js';
import { RedisTaskRouteStore } from './state/redis-task-routes.js';
import { callTool, type ToolCallDeps } from './gateway/tool-calls.js';
import { UpstreamRelay } from './gateway/upstream-relay.js';
import { OwnerRequests } from './gateway/owner-requests.js';
import { API_BASE, createApiApp } from './http/api/api-app.js';
import { createHttpApp } from './http/app.js';
import { builtConsoleDir, CONSOLE_PATH, loadConsoleFiles, mountConsole } from './http/console.js';
import { ConsoleOAuthClients } from './http/console-oauth.js';
import { listen, type Listening } from './http/listen.js';
import { modernRequests } from './http/modern-requests.js';
import { isLoopbackHost } from './http/guards/loopback.js';
import { mountWellKnown } from './http/well-known.js';
import { mountUserAuthorizationRoutes } from './http/oauth-routes.js';
import { createAuthFor } from './upstream/auth/auth-factory.js';
import type { OAuthClientDeps } from './upstream/auth/oauth-client-deps.js';
import { tokenChangePeers } from './upstream/auth/token-change-peers.js';
import { userIdentitiesFor } from './upstream/auth/user-identity.js';
import { AccessRepository } from './store/access-repository.js';
import { ApiKeyRepository } from './store/api-key-repository.js';
import type { CallerEnv } from './http/caller.js';
import { FailedAuthThrottle } from './limits/failed-auth-throttle.js';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from './limits/rate-limiter.js';
import { RateLimits } from './limits/rate-limits.js';
import { AuditLog } from './observability/audit-log.js';
import { GatewayMetrics } from './observability/metrics.js';
import { ServerRegistry } from './registry/server-registry.js';
import { AuditRepository } from './store/audit-repository.js';
import type { OpenedDatabase } from './store/database.js';
import { localUrlOf } from './store/data-dir-lock.js';
import { ServerRepository } from './store/server-repository.js';
import { ChildProcessGroups } from './upstream/child-processes.js';
import { UpstreamPool } from './upstream/upstream-pool.js';
import { MemorySharedState } from './state/memory-state.js';
import { BusRpc } from './state/bus-rpc.js';
import { ConfigChanges } from './state/config-changes.js';
import type { SharedState } from './state/shared-state.js';
import { OrderedParts } from './lifecycle.js';

export interface ConfluxDeps {
  logger: Logger;
  /** Registry and audit storage; without it, servers come from the config only and audit goes to the log. */
  database?: OpenedDatabase | undefined;
  /** When given, the file is watched and its server changes are applied while running. */
  configFile?: { path: string; env: Readonly<Record<string, string | undefined>> } | undefined;
  /** Shared state for several replicas (rate limits); without it, state is per process. */
  redis?: Redis | undefined;
  /** The process environment, for `env://` credential references (default: the config file's, else none). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * What replicas share (sessions, messages between replicas, resumable events). Default: this
   * process's own memory. The gateway closes it when it stops.
   */
  state?: SharedState | undefined;
  /** The start of the rate limiter's Redis keys is this plus `rl:` (default `conflux:`). */
  redisPrefix?: string | undefined;
  /** The built operator console's folder (default: the package's `dist/console`); not served when it has not been built. */
  consoleDir?: string | undefined;
  /**
   * The upstream connections' clock, which their circuit breakers' cooldowns and reconnect
   * schedules read (default `Date.now`): a test moves it past a cooldown instead of waiting one out.
   */
  now?: (() => number) | undefined;
}

export interface Conflux {
  readonly config: Config;
  readonly upstreams: UpstreamPool;
  readonly registry: ServerRegistry;
  readonly catalog: LiveCatalog;
  readonly sessions: SessionRegistry;
  readonly audit: AuditLog;
  readonly metrics: GatewayMetrics;
  readonly accessControl: AccessControl;
  /** What this replica shares with the others. */
  readonly state: SharedState;
  /** 2026-07-28 calls paused for their client's input (a 2025 upstream asked it something mid-call). */
  readonly inputRounds: Pick<ModernCallBridge, 'paused'>;
  /** What the tool calls of every surface (MCP, REST, the CLI) run on: one value, built once. */
  readonly toolCalls: ToolCallDeps;
  /** API keys, when the gateway has a database. */
  readonly apiKeys: ApiKeys | undefined;
  readonly app: Hono<CallerEnv>;
  /**
   * Loads registered servers and starts connecting every enabled upstream (without waiting for
   * them). When a part fails to start, those started are stopped before it rejects.
   */
  start(): Promise<void>;
  /** Serves HTTP; defaults come from the config's `gateway` section. */
  listen(host?: string, port?: number): Promise<{ url: string; port: number }>;
  /**
   * Reads the config file again and applies what changed in its servers, as an edit noticed by
   * the watch is (`reason` is logged: `SIGHUP`). Undefined without a config file, or before `start`.
   */
  reloadConfig(reason: string): Promise<ReloadResult | undefined>;
  /** The gateway's routing of one tool call, without HTTP (used by the CLI). */
  callTool(params: CallToolRequest['params'], signal?: AbortSignal): Promise<CallToolResult>;
  /**
   * Stops accepting, lets calls in flight finish (up to `shutdownGraceSeconds`), then closes
   * sessions and connections, stops upstreams and their processes, and flushes the audit trail:
   * the parts of `createConflux` in the reverse of their start order, every one even when
   * another fails (each failure is logged; it rejects once all have run).
   */
  stop(): Promise<void>;
}

/** The composition root: builds every part from the config. Nothing here is a module singleton. */
export function createConflux(config: Config, deps: ConfluxDeps): Conflux {
  const { logger, database } = deps;
  const settings = config.gateway;
  const state = deps.state ?? new MemorySharedState();
  const groups = new ChildProcessGroups();
  const catalog = new LiveCatalog({ exposure: settings.exposure, broadcasts: settings.broadcast.enabled });
  const tracker = new CallTracker();
  const limit = pLimit(settings.broadcast.concurrency);
  const auditRepository = database ? new AuditRepository(database.db) : undefined;
  const audit = new AuditLog({
    repository: settings.audit.enabled ? auditRepository : undefined,
    logger: logger.child({ component: 'audit' }),
    redactKeys: settings.audit.redactKeys,
    capacity: settings.audit.bufferSize,
    maxArgumentBytes: settings.audit.maxArgumentBytes,
    maxRefusedPerMinute: settings.audit.maxRefusedPerMinute,
  });
  const auth = settings.auth === 'none' ? undefined : settings.auth;
  if (auth?.apiKeys && !database) throw new Error('gateway.auth.apiKeys needs a database (DATABASE_URL or the embedded one)');
  const apiKeys = database ? new ApiKeys(new ApiKeyRepository(database.db), logger.child({ component: 'auth' })) : undefined;
  const oauth = auth?.oauth ? new OAuthResourceServer(auth.oauth, logger.child({ component: 'oauth' })) : undefined;
  const limiter: RateLimiter = deps.redis
    ? new RedisRateLimiter(deps.redis, {
        prefix: `${deps.redisPrefix ?? 'conflux:'}rl:`,
        onRedisError: settings.rateLimit.onRedisError,
        logger: logger.child({ component: 'rate-limit' }),
        onFallback: (outcome) => metrics.rateLimiterFallbacks.inc({ outcome }),
      })
    : new MemoryRateLimiter();
  const throttle = new FailedAuthThrottle(limiter, settings.rateLimit, {
    logger: logger.child({ component: 'auth' }),
    onThrottled: () => metrics.authThrottled.inc(),
  });
  const authenticator = new Authenticator(settings.auth, { apiKeys: auth?.apiKeys ? apiKeys : undefined, oauth, logger: logger.child({ component: 'auth' }), throttle });
  const accessControl = new AccessControl(settings.access, database ? new AccessRepository(database.db) : undefined, logger.child({ component: 'access' }));
  const sessions: SessionRegistry = new SessionRegistry({
    logger,
    idleMs: settings.sessionIdleSeconds * 1000,
    rules: accessControl,
    // Sessions are records every replica shares; this replica holds copies of those it serves.
    state,
    cancelOutside: (session, message) => plainToolCalls.cancel(session, message),
    createServer: (owner) => createSessionServer(serverDeps, owner.access),
    onOpened: (session) => {
      // Sessions opened here, not the copies of sessions opened elsewhere.
      if (session.origin === 'opened') metrics.sessionsCreated.inc();
      upstreams.sessionOpened(session.principal);
      upstreams.listThrough({ principal: session.access.principal }, (server) => session.access.visible(server));
    },
    onEnded: () => metrics.sessionsDestroyed.inc(),
    onClosed: (session) => {
      void subscriptions.release(session);
      // The user's own upstream instances live as long as some session of theirs does.
      if (![...sessions.all()].some((open) => open.principal === session.principal)) upstreams.sessionsEnded(session.principal);
    },
  });
  // The gateway as an OAuth client of upstreams; users' own authorisations need the database.
  const oauthClient: OAuthClientDeps = {
    logger: logger.child({ component: 'upstream-oauth' }),
    env: deps.env ?? deps.configFile?.env ?? {},
    clientName: settings.upstreamIdentity.clientName,
    onTokenRefreshed: (server) => metrics.oauthTokenRefreshes.inc({ server_id: server }),
    onTokenRefreshFailed: (_server, provider) => metrics.oauthTokenRefreshFailures.inc({ provider }),
  };
  // The replicas' requests to one another, and those of the `processes: one` stdio servers over them.
  const rpc = new BusRpc(state.bus, logger.child({ component: 'replica-rpc' }));
  const users = userIdentitiesFor(settings, database, oauthClient, state.replicaId, tokenChangePeers(rpc, logger));
  const relay = new UpstreamRelay(tracker, sessions, logger.child({ component: 'relay' }));
  const owners = new OwnerRequests({ rpc, state, tracker, relay, logger: logger.child({ component: 'single-owner' }) });
  const upstreams = new UpstreamPool({
    authFor: createAuthFor({ oauth: oauthClient, users }),
    logger,
    ...(deps.now ? { now: deps.now } : {}),
    groups,
    reconnect: settings.reconnect,
    health: {
      breaker: { failureThreshold: settings.circuitBreaker.failureThreshold, cooldownMs: settings.circuitBreaker.cooldownSeconds * 1000 },
      pingIntervalMs: settings.healthCheck.intervalSeconds * 1000,
      pingTimeoutMs: settings.healthCheck.timeoutSeconds * 1000,
      pingFailureThreshold: settings.healthCheck.failureThreshold,
    },
    events: relay,
    eventsFor: (user) => relay.forPrincipal(user),
    singleOwner: owners,
    instances: settings.upstreamIdentity.instances,
    instanceEvents: {
      started: (server) => metrics.userInstanceStarts.inc({ server_id: server }),
      stopped: (server) => metrics.userInstanceStops.inc({ server_id: server }),
      reaped: (server) => metrics.userInstanceReaps.inc({ server_id: server }),
    },
    onRestart: (server) => metrics.restarts.inc({ server_id: server }),
  });
  // A user who has just authorised a server gets their instance started: its tools are listed
  // (from the first user's, for a server nobody had used) and their next call finds it ready.
  // A revoked authorisation ends that user's connection to the server, not just its next token.
  users?.onRevoked((user, server) => void upstreams.stopInstance(server, user).catch((error: unknown) => logger.warn({ err: error, server }, 'could not stop the instance of a revoked authorisation')));
  users?.onConnected((caller, server) => void upstreams.forCaller(server, caller).catch((error: unknown) => logger.debug({ err: error, server }, 'the instance of a user who just authorised did not start')));
  const metrics = new GatewayMetrics({
    servers: () => upstreams.statuses().map((s) => ({ name: s.name, state: s.state, connectedAt: s.connectedAt, breaker: s.breaker, replicas: s.replicas })),
    sessions: () => sessions.size,
    auditDropped: () => audit.stats.dropped,
    auditRefusedSkipped: () => audit.drops.refusedOverLimit,
    userInstances: () => upstreams.instances(),
  });
  const rateLimits = new RateLimits(limiter, settings.rateLimit, metrics);
  const subscriptions = new ResourceSubscriptions(upstreams, logger.child({ component: 'subscriptions' }));
  // Routes in Redis when there is one, so that a task created through one replica is followed through any.
  const taskRoutes = deps.redis ? new RedisTaskRouteStore(deps.redis, { prefix: deps.redisPrefix ?? 'conflux:', logger: logger.child({ component: 'tasks' }) }) : new InMemoryTaskRouteStore();
  const tasks = new TaskRelay({ upstreams, tracker, rateLimits, logger, routes: taskRoutes, replicas: { replicaId: state.replicaId, rpc } });
  const toolCalls: ToolCallDeps = { catalog, tasks, upstreams, tracker, limit, audit, metrics, rateLimits, logger };
  const inputRounds = new ModernCallBridge({
    ttlMs: settings.limits.pausedCallSeconds * 1000,
    // Each paused call holds an upstream request open, as a session holds its state: the same
    // bound; one caller holds at most as many as it may have calls at once (a 2026 caller's
    // slots, which its paused calls occupy anyway), so no caller fills the store for the others.
    capacity: settings.limits.maxSessions,
    capacityPerCaller: settings.limits.maxConcurrentCallsPerSession,
    logger: logger.child({ component: 'input-rounds' }),
    // A retry landing on another replica is forwarded to the one holding its call.
    replicas: { replicaId: state.replicaId, rpc },
  });
  const serverDeps: SessionServerDeps = {
    ...toolCalls,
    sessions,
    subscriptions,
    pageSize: settings.pageSize,
    maxConcurrentCallsPerSession: settings.limits.maxConcurrentCallsPerSession,
    inputRounds,
  };
  // 2026-07-28 requests: one server per request, built for its caller; list changes reach the
  // clients listening for them through this bus, as 2025 sessions hear them as notifications.
  const listChanges = new InMemoryServerEventBus((error) => logger.warn({ err: error }, 'a listen stream could not take a list change'));
  const modern = createMcpHandler((request) => createRequestServer(serverDeps, accessIn(request.authInfo)), {
    legacy: 'reject',
    bus: listChanges,
    // Listen streams hold a connection each, as sessions hold their state: the same bound.
    maxSubscriptions: settings.limits.maxSessions,
    // Refusals (bad envelope, header mismatch, unsupported revision) are answered to the client; they are no fault of the gateway's.
    onerror: (error) => logger.debug({ err: error }, '2026-07-28 request refused or failed'),
  });
  const taskListens = new TaskListen({
    relay: tasks,
    bus: listChanges,
    capabilities: () => mergedCapabilities(upstreams.list(), 'modern'),
    maxStreams: settings.limits.maxSessions,
  });
  const registry = new ServerRegistry({
    upstreams,
    repository: database ? new ServerRepository(database.db) : undefined,
    logger,
    allowStdio: settings.api.allowStdio,
  });
  let listening: Listening | undefined;
  let watcher: ConfigWatch | undefined;
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
      if (changes.tools) listChanges.publish({ kind: 'tools_list_changed' });
      if (changes.prompts) listChanges.publish({ kind: 'prompts_list_changed' });
      if (changes.resources) listChanges.publish({ kind: 'resources_list_changed' });
    }
  });

  // Per cached view (views are rebuilt on every catalog change, so the answer never goes stale).
  const listedAsIsByView = new WeakMap<object, boolean>();
  const streams = new CredentialBoundStreams({
    keyActive: apiKeys ? (id) => apiKeys.isActive(id) : undefined,
    checkIntervalMs: 2000,
    logger: logger.child({ component: 'auth' }),
  });
  const stopWatchingRevocations = apiKeys?.onRevoked((id) => streams.revoked(id));
  // Servers, rules and keys changed through one replica are applied by every replica.
  const configChanges = new ConfigChanges({ bus: state.bus, replicaId: state.replicaId, accessControl, apiKeys, registry, logger: logger.child({ component: 'config-changes' }) });
  const consoleFiles = loadConsoleFiles(deps.consoleDir ?? builtConsoleDir());
  const plainToolCalls = new PlainToolCalls(toolCalls, { maxConcurrentCallsPerSession: settings.limits.maxConcurrentCallsPerSession });
  const sessionlessToolCalls = new SessionlessToolCalls({ toolCalls, sessions, inputRounds, maxConcurrentCallsPerCaller: settings.limits.maxConcurrentCallsPerSession });
  const app = createHttpApp({
    streams,
    sessions,
    upstreams,
    logger,
    modern: modernRequests(modern, { streams, maxListenStreamsPerCaller: settings.limits.maxSessionsPerPrincipal, taskListens, catalog, toolCalls: sessionlessToolCalls }),
    maxBodyBytes: { mcp: settings.maxBodyBytes, api: settings.api.maxBodyBytes },
    limits: settings.limits,
    fast: {
      toolsBytes: (access) => {
        const cached = catalog.viewFor(access);
        if (cached.view.tools.length > settings.pageSize) return undefined;
        let asIs = listedAsIsByView.get(cached.view);
        if (asIs === undefined) listedAsIsByView.set(cached.view, (asIs = listedAsIs(cached.view.tools)));
        return asIs ? cached.toolsBytes : undefined;
      },
      toolCalls: plainToolCalls,
    },
    rateLimits,
    auth: {
      authenticator,
      accessControl,
      resource: auth?.oauth?.resource,
      oauth: auth?.oauth ? { scopes: auth.oauth.scopes } : undefined,
      onFailure: (failure) => metrics.authFailures.inc({ status: failure.status, reason: failure.code ?? 'missing' }),
      trustedProxies: new TrustedProxies(settings.trustedProxies),
    },
    metrics,
    guard: {
      get bindHost() {
        return bindHost;
      },
      allowedHosts: settings.allowedHosts,
      allowedOrigins: settings.allowedOrigins,
    },
    ready: database ? () => database.ping() : undefined,
    limiterHealth: () => limiter.health(),
    sessionState: async () => ({ backend: state.backend, state: await state.health() }),
    consolePath: consoleFiles ? CONSOLE_PATH : undefined,
  });
  mountWellKnown(app, oauth, logger);
  if (consoleFiles) {
    const consoleClients = oauth ? new ConsoleOAuthClients({ metadata: () => oauth.metadata(), logger: logger.child({ component: 'console' }) }) : undefined;
    mountConsole(app, consoleFiles, { authRequired: authenticator.enabled, oauthClient: consoleClients && ((uri) => consoleClients.for(uri)), trustedProxies: new TrustedProxies(settings.trustedProxies), registrationHosts: settings.allowedHosts });
  }
  // A user's link and callback may reach any replica: the one holding the authorization answers them.
  if (users) mountUserAuthorizationRoutes(app, users, { rpc, replicaId: state.replicaId, logger: logger.child({ component: 'upstream-oauth' }) });
  app.route(
    API_BASE,
    createApiApp({ ...toolCalls, registry, auditRepository, accessControl, apiKeys, users, sessions }, { maxJsonDepth: settings.limits.maxJsonDepth, trustedProxies: new TrustedProxies(settings.trustedProxies) }),
  );

  /** Lets the calls in flight finish within the grace period, and their answers be written. */
  const drainCalls = async () => {
    const deadline = Date.now() + settings.shutdownGraceSeconds * 1000;
    if (!(await tracker.idleWithin(settings.shutdownGraceSeconds * 1000))) logger.warn({ inFlight: tracker.size }, 'shutdown grace period over; cutting calls still in flight');
    // The tracker counts upstream requests: the answers of the calls that just ended still
    // pass through audit, the SDK server and the socket, within what is left of the grace.
    else if (listening && !(await listening.answered(Math.max(0, deadline - Date.now())))) {
      logger.warn('shutdown grace period over; cutting answers still being written');
    }
  };
  // The start order; `stop` goes from the bottom up (see `OrderedParts`), so each part stops
  // while those above it still run. A part without `start` runs since it was built above. The
  // HTTP listener is opened by `listen`, after `start`; its two stop steps find it there.
  const parts = new OrderedParts(
    [
      { name: 'child process exit hook', start: () => groups.installExitHook(), stop: () => groups.removeExitHook() },
      { name: 'shared state', stop: () => state.close() },
      { name: 'access rules', start: () => accessControl.start(), stop: () => accessControl.stop() },
      { name: 'rate limiter', stop: () => limiter.close() },
      { name: 'audit trail', stop: () => audit.close() },
      { name: 'replica requests', stop: () => rpc.close() },
      { name: 'paused calls', stop: () => inputRounds.close() },
      { name: 'single-owner requests', stop: () => owners.close() },
      { name: 'upstreams', stop: () => upstreams.stop() },
      // Discovered now so a wrong issuer shows in the log at start; requests retry it if it failed.
      { name: 'OAuth discovery', start: () => void oauth?.metadata().catch(() => {}) }, // discovery logs its own failure
      { name: 'server registry', start: () => registry.start(config.servers), stop: () => registry.close() },
      { name: 'HTTP connections', stop: () => listening?.cut() },
      { name: 'sessions', stop: () => sessions.closeAll() },
      { name: 'task relay', stop: () => tasks.close() },
      { name: 'task listen streams', stop: () => taskListens.closeAll() },
      { name: '2026-07-28 requests', stop: () => modern.close() },
      { name: 'credential-bound streams', stop: () => streams.stop() },
      { name: 'API key revocations', stop: () => stopWatchingRevocations?.() },
      // Other replicas' calls to a processes: one server held here were served through the grace
      // period (nobody else can take its lease before it is let go, above); from now on one would
      // start on a process about to stop: refused, to be tried again once another holds it.
      { name: 'single-owner serving', stop: () => owners.drain() },
      { name: 'calls in flight', stop: drainCalls },
      // Likewise a call waiting for its user to finish an authorization.
      { name: 'pending user authorisations', stop: () => users?.close() },
      // A paused call waits for a retry that can no longer arrive: cancelled now, not after the grace period.
      { name: 'paused calls awaiting a retry', stop: () => inputRounds.stop() },
      { name: 'HTTP listener', stop: () => listening?.stopAccepting() },
      { name: 'replica config changes', start: () => configChanges.start(), stop: () => configChanges.stop() },
      {
        name: 'config file watch',
        start: () => {
          if (!deps.configFile) return;
          watcher = watchConfigFile({
            path: deps.configFile.path,
            env: deps.configFile.env,
            logger,
            running: config,
            apply: (next) => registry.setConfigServers(next.servers),
            onReloaded: (result) => metrics.configReloads.inc({ result }),
          });
        },
        stop: () => watcher?.close(),
      },
    ],
    logger,
  );

  return {
    config,
    upstreams,
    registry,
    catalog,
    sessions,
    audit,
    metrics,
    accessControl,
    state,
    inputRounds,
    toolCalls,
    apiKeys,
    app,
    start: () => parts.start(),
    async listen(host = settings.host, port = settings.port) {
      bindHost = host;
      const beyondLoopback = !isLoopbackHost(host);
      if (beyondLoopback && auth?.oauth && !auth.oauth.resource && settings.allowedHosts.length === 0) {
        // The token audience would otherwise come from whatever Host a request names.
        throw new Error(
          `gateway.auth.oauth.resource or gateway.allowedHosts must be set to listen on ${host}: the OAuth audience is never taken from an unchecked Host header`,
        );
      }
      if (beyondLoopback && settings.allowedHosts.length === 0) {
        logger.warn(
          { host },
          'gateway.allowedHosts is empty and the gateway listens beyond loopback: any Host header is accepted, so DNS-rebinding pages are not refused. List the names clients use.',
        );
      }
      if (!authenticator.enabled && beyondLoopback) {
        logger.warn(
          { host },
          'AUTHENTICATION IS OFF (gateway.auth: none) and the gateway listens on a non-loopback address: anyone who can reach it may use every tool. Configure gateway.auth.',
        );
      }
      listening = await listen(app, host, port);
      // Authorization servers send users back to `<publicUrl>/oauth/callback`; without a publicUrl, to where this listens.
      users?.listening(localUrlOf(host, listening.port));
      const shownHost = host.includes(':') ? `[${host}]` : host;
      return { url: `http://${shownHost}:${listening.port}/mcp`, port: listening.port };
    },
    reloadConfig: (reason) => watcher?.reload(reason) ?? Promise.resolve(undefined),
    callTool: (params, signal) => callTool(toolCalls, params, detachedCall('cli', fullAccess(ANONYMOUS), signal)),
    stop: () => parts.stop(),
  };
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GATEWAY_VERSION } from '../version.js';

/** What the server gauges read at scrape time. */
export interface ServerSnapshot {
  name: string;
  state: string;
  connectedAt: string | undefined;
  breaker: 'closed' | 'open' | 'half-open';
  /** A server with `urls`: its replicas, named by `replica` (scheme, host and port; never a credential). */
  replicas?: readonly ReplicaSnapshot[] | undefined;
}

/** One replica of a server with `urls`, as the replica series read it. */
export interface ReplicaSnapshot {
  replica: string;
  state: string;
  breaker: 'closed' | 'open' | 'half-open';
  inFlight: number;
  requests: { ok: number; error: number };
}

const STATES = ['connecting', 'ready', 'degraded', 'down', 'misconfigured', 'disabled'] as const;
const BREAKER_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;
/** Distinct tool labels kept; calls to further tools are counted under `other`. */
const MAX_TOOL_LABELS = 1000;
/**
 * Default metrics left out: gauges whose names end in `_total`, which Prometheus reserves for
 * counters (`promtool check metrics` refuses them). Their per-type series stay
 * (`conflux_nodejs_active_handles{type}` and the like), and sum to the same number.
 */
const MISNAMED_DEFAULT_METRICS = ['conflux_nodejs_active_handles_total', 'conflux_nodejs_active_requests_total', 'conflux_nodejs_active_resources_total'];

/**
 * The gateway's Prometheus metrics, one registry per gateway (no global default registry, so
 * several gateways can live in one process). Server gauges are read from the pool at scrape
 * time; counters are bumped where things happen.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  #scrape: () => Promise<string> = () => this.registry.metrics();
  readonly #tools = new Set<string>();
  readonly toolExecutions: Counter<'tool_id' | 'status'>;
  readonly toolDuration: Histogram<'tool_id'>;
  readonly restarts: Counter<'server_id'>;
  readonly sessionsCreated: Counter;
  readonly sessionsDestroyed: Counter;
  readonly rateLimited: Counter<'scope'>;
  readonly authFailures: Counter<'status' | 'reason'>;
  readonly authThrottled: Counter;
  readonly rateLimiterFallbacks: Counter<'outcome'>;
  readonly oauthTokenRefreshes: Counter<'server_id'>;
  readonly oauthTokenRefreshFailures: Counter<'provider'>;
  readonly userInstanceStarts: Counter<'server_id'>;
  readonly userInstanceStops: Counter<'server_id'>;
  readonly userInstanceReaps: Counter<'server_id'>;
  readonly auditDropped: Counter;
  readonly auditRefusedSkipped: Counter;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  /** Config file reloads by result (`applied`, `rejected`, ...), counted by whoever applies them. */
  readonly configReloads: Counter<'result'>;

  constructor(sources: {
    servers: () => ServerSnapshot[];
    sessions: () => number;
    auditDropped: () => number;
    auditRefusedSkipped?: () => number;
    /** The running per-user upstream instances. */
    userInstances?: () => { server: string; user: string }[];
  }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'conflux_' });
    for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    new Gauge({
      name: 'conflux_build_info',
      aggregator: 'first',
      help: 'Always 1; its labels say which gateway version runs on which Node.js',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: GATEWAY_VERSION, node_version: process.version }, 1);
    new Gauge({
      name: 'mcp_server_status',
      aggregator: 'min',
      help: '1 when the upstream server is connected (ready or degraded), else 0',
      labelNames: ['server_id'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.servers()) this.set({ server_id: s.name }, s.state === 'ready' || s.state === 'degraded' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mcp_server_state',
      aggregator: 'max',
      help: 'The state of each upstream server (1 for its current state)',
      labelNames: ['server_id', 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.servers()) for (const state of STATES) this.set({ server_id: s.name, state }, s.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mcp_server_uptime_seconds',
      aggregator: 'min',
      help: 'Seconds since the upstream server connected (0 when not connected)',
      labelNames: ['server_id'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const s of sources.servers()) this.set({ server_id: s.name }, s.connectedAt ? (now - Date.parse(s.connectedAt)) / 1000 : 0);
      },
    });
    new Gauge({
      name: 'mcp_circuit_breaker_state',
      aggregator: 'max',
      help: 'Circuit breaker per upstream server: 0 closed, 1 half-open, 2 open',
      labelNames: ['server_id'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.servers()) this.set({ server_id: s.name }, BREAKER_VALUE[s.breaker]);
      },
    });
    // Replicas are counted by their server (`replicated-server.ts`) and read at scrape time, as the server gauges are.
    const replicas = function* () {
      for (const s of sources.servers()) for (const r of s.replicas ?? []) yield { labels: { server_id: s.name, replica: r.replica }, replica: r };
    };
    new Gauge({
      name: 'mcp_upstream_replica_up',
      aggregator: 'min',
      help: '1 when the replica of an upstream server with urls is connected (ready or degraded), else 0',
      labelNames: ['server_id', 'replica'],
      registers,
      collect() {
        this.reset();
        for (const { labels, replica } of replicas()) this.set(labels, replica.state === 'ready' || replica.state === 'degraded' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mcp_upstream_replica_circuit_breaker_state',
      aggregator: 'max',
      help: 'Circuit breaker per replica: 0 closed, 1 half-open, 2 open',
      labelNames: ['server_id', 'replica'],
      registers,
      collect() {
        this.reset();
        for (const { labels, replica } of replicas()) this.set(labels, BREAKER_VALUE[replica.breaker]);
      },
    });
    new Gauge({
      name: 'mcp_upstream_replica_requests_in_flight',
      help: 'Requests in flight on each replica (what least_connections balances)',
      labelNames: ['server_id', 'replica'],
      registers,
      collect() {
        this.reset();
        for (const { labels, replica } of replicas()) this.set(labels, replica.inFlight);
      },
    });
    new Counter({
      name: 'mcp_upstream_replica_requests_total',
      help: 'Requests sent to each replica (status ok: answered, with a result or a JSON-RPC error; error: failed on the way); restarts from 0 when the server is redefined',
      labelNames: ['server_id', 'replica', 'status'],
      registers,
      collect() {
        this.reset();
        for (const { labels, replica } of replicas()) {
          this.inc({ ...labels, status: 'ok' }, replica.requests.ok);
          this.inc({ ...labels, status: 'error' }, replica.requests.error);
        }
      },
    });
    new Gauge({
      name: 'mcp_user_sessions_active',
      help: 'Open downstream MCP sessions',
      registers,
      collect() {
        this.set(sources.sessions());
      },
    });
    new Gauge({
      name: 'mcp_user_instances',
      help: 'Running per-user instances of upstream servers (shared: false, or acting as each user), by server and user',
      labelNames: ['server_id', 'user'],
      registers,
      collect() {
        this.reset();
        for (const i of sources.userInstances?.() ?? []) this.inc({ server_id: i.server, user: i.user });
      },
    });
    // The audit log counts these itself (and logs them); the counters read its running totals.
    this.auditDropped = new Counter({
      name: 'conflux_audit_events_dropped_total',
      help: 'Audit events dropped: the buffer was full, or the database refused the event itself',
      registers,
      collect() {
        this.reset();
        this.inc(sources.auditDropped());
      },
    });
    // Apart from the drops above: these are skipped by design (gateway.audit.maxRefusedPerMinute), not lost.
    this.auditRefusedSkipped = new Counter({
      name: 'conflux_audit_refused_skipped_total',
      help: 'Refused calls (denied, rate limited) counted but not written to the audit trail: over gateway.audit.maxRefusedPerMinute',
      registers,
      collect() {
        this.reset();
        this.inc(sources.auditRefusedSkipped?.() ?? 0);
      },
    });
    this.restarts = new Counter({ name: 'mcp_server_restarts_total', help: 'Reconnects of upstream servers after a failure', labelNames: ['server_id'], registers });
    this.toolExecutions = new Counter({ name: 'mcp_tool_executions_total', help: 'Tool calls by tool and outcome', labelNames: ['tool_id', 'status'], registers });
    this.toolDuration = new Histogram({
      name: 'mcp_tool_execution_duration_seconds',
      help: 'Tool call duration',
      labelNames: ['tool_id'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.sessionsCreated = new Counter({ name: 'mcp_user_sessions_created_total', help: 'Downstream sessions opened', registers });
    this.sessionsDestroyed = new Counter({ name: 'mcp_user_sessions_destroyed_total', help: 'Downstream sessions closed', registers });
    this.rateLimited = new Counter({ name: 'mcp_rate_limit_rejections_total', help: 'Requests refused by rate limits', labelNames: ['scope'], registers });
    this.authFailures = new Counter({
      name: 'conflux_auth_failures_total',
      help: 'Requests refused by authentication (status 401/403/503; reason: the RFC 6750 error code, or missing)',
      labelNames: ['status', 'reason'],
      registers,
    });
    this.authThrottled = new Counter({
      name: 'conflux_auth_throttled_total',
      help: 'Requests refused (429) before authentication because their client address failed authentication too often',
      registers,
    });
    this.oauthTokenRefreshes = new Counter({
      name: 'mcp_oauth_token_refreshes_total',
      help: "Upstream access tokens the gateway renewed (its service identity's, or one exchanged for a user) before or when they expired",
      labelNames: ['server_id'],
      registers,
    });
    this.oauthTokenRefreshFailures = new Counter({
      name: 'mcp_oauth_token_refresh_failures_total',
      help: 'Upstream token requests that failed, by authorization server (its issuer host)',
      labelNames: ['provider'],
      registers,
    });
    this.userInstanceStarts = new Counter({ name: 'mcp_user_instance_starts_total', help: 'Per-user upstream instances started', labelNames: ['server_id'], registers });
    this.userInstanceStops = new Counter({ name: 'mcp_user_instance_stops_total', help: 'Per-user upstream instances stopped, for any reason', labelNames: ['server_id'], registers });
    this.userInstanceReaps = new Counter({ name: 'mcp_user_instance_reaps_total', help: 'Per-user upstream instances stopped after gateway.upstreamIdentity.instances.idleSeconds without a request', labelNames: ['server_id'], registers });
    this.httpRequests = new Counter({
      name: 'conflux_http_requests_total',
      help: 'HTTP requests answered, by route pattern (unmatched: no route), method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'conflux_http_request_duration_seconds',
      help: 'Time until the response headers, by route pattern and method (a stream is timed to its first byte, not to its end)',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.configReloads = new Counter({
      name: 'conflux_config_reloads_total',
      help: 'Reloads of the config file, by result',
      labelNames: ['result'],
      registers,
    });
    this.rateLimiterFallbacks = new Counter({
      name: 'conflux_rate_limiter_unavailable_total',
      help: 'Rate limit decisions made without Redis, which did not answer (outcome: allowed under failOpen, refused under failClosed)',
      labelNames: ['outcome'],
      registers,
    });
  }

  /** What `/metrics` answers: this registry's metrics, or those `scrapeWith` gave. */
  scrape(): Promise<string> {
    return this.#scrape();
  }

  /** Answers `/metrics` from `source` instead (every worker's, in a worker: `cluster-metrics.ts`). */
  scrapeWith(source: () => Promise<string>): void {
    this.#scrape = source;
  }

  /** Counts one tool call; tool labels are capped so a huge catalog cannot explode cardinality. */
  toolCall(tool: string, status: 'ok' | 'error' | 'denied', seconds: number): void {
    let label = tool;
    if (!this.#tools.has(tool)) {
      if (this.#tools.size >= MAX_TOOL_LABELS) label = 'other';
      else this.#tools.add(tool);
    }
    this.toolExecutions.inc({ tool_id: label, status });
    this.toolDuration.observe({ tool_id: label }, seconds);
  }
}

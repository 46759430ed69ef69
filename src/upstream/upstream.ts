import type { Prompt, Resource, ResourceTemplateType, ServerCapabilities, Tool } from '@modelcontextprotocol/client';
import type { ServerConfig } from '../config/schema.js';
import type { BreakerState } from './circuit-breaker.js';
import type { UpstreamRequestOptions, UpstreamState, UpstreamStatus } from './upstream-connection.js';

/** An upstream's status as `/servers` and the API show it. */
export interface ServerStatus extends UpstreamStatus {
  /** Set on a server that runs one instance per user (`shared: false`, or a user's own identity). */
  perUser?: true;
  /** A per-user server's running user instances. */
  instances?: number;
  /** A server with `urls`: each replica, in config order. */
  replicas?: ReplicaStatus[];
  /**
   * A stdio server with `processes: one`: where its one process runs, `here` or the id of the
   * gateway replica running it; absent while none does.
   */
  owner?: string;
}

/** One replica of a server with `urls` (see `replicated-server.ts`). */
export interface ReplicaStatus {
  /** Its name in metrics and listings: scheme, host and port (with `#<index>` when two share them). */
  replica: string;
  /** Its URL with credentials and secret query values hidden (`observability/redact.ts`). */
  url: string;
  weight: number;
  /** Its connection's health. */
  state: UpstreamState;
  breaker: BreakerState;
  inFlight: number;
  /** Requests it was sent: answered (a result or a JSON-RPC error), or failed on the way. */
  requests: { ok: number; error: number };
  lastError: string | undefined;
  connectedAt: string | undefined;
  nextRetryAt: string | undefined;
}

/**
 * One upstream as the gateway and the catalog use it: its lists, its state, and a way to send
 * it requests. A shared server's connection is one; so are a per-user server's catalog entry
 * (whose `request` refuses: requests go to the caller's own instance, see
 * `UpstreamPool.forCaller`) and each user's instance.
 */
export interface Upstream {
  readonly name: string;
  /** The server's definition as configured (a user instance's values are not in it). */
  readonly config: ServerConfig;
  /** The connection's own state; `health` is what to report. */
  readonly state: UpstreamState;
  readonly health: UpstreamState;
  readonly tools: readonly Tool[];
  readonly prompts: readonly Prompt[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplateType[];
  readonly capabilities: ServerCapabilities | undefined;
  readonly instructions: string | undefined;
  readonly lastError: string | undefined;
  status(): ServerStatus;
  /** Sends a request and returns its result unvalidated (see `UpstreamConnection.request`). */
  request(method: string, params: Record<string, unknown> | undefined, options?: UpstreamRequestOptions, owner?: unknown): Promise<Record<string, unknown>>;
}

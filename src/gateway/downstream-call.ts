import type { ClientCapabilities, LoggingLevel } from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';

/** A message the gateway sends to the client about a call: a notification, or a request it asks of the client. */
export interface OutboundMessage {
  method: string;
  params?: Record<string, unknown> | undefined;
}

/**
 * A downstream request being served: what is needed to send messages back to the client
 * that made it, on the stream of that very request. Conflux's own shape: each surface (the
 * 2025 session, the 2026 per-request server, REST, the CLI) adapts its context into it.
 */
export interface DownstreamCall {
  /** Who is calling, for audit; `anonymous` without authentication. */
  principal: string;
  /** What the caller may use, evaluated for this request. */
  access: Access;
  /** Where the request came in. */
  channel: 'mcp' | 'rest' | 'cli';
  /** The 2025 session the request belongs to; none on 2026-07-28, REST and the CLI. */
  sessionId: string | undefined;
  /** The JSON-RPC id of the client's request, for logs. */
  requestId?: string | number | undefined;
  /**
   * What the client can be asked for mid-call (`roots`, `sampling`, `elicitation`) and what else
   * it declared. A client that cannot be sent requests on this call declares none of the three.
   */
  clientCapabilities: ClientCapabilities | undefined;
  /**
   * The least severe log message the client takes about this call: a 2025 session's threshold
   * when the call began (the level it set, else the default), the level a 2026-07-28 request
   * named; undefined when no log message about it can reach a client (a 2026 request that named
   * none, REST, the CLI).
   */
  logLevel?: LoggingLevel | undefined;
  signal: AbortSignal;
  sendNotification(notification: OutboundMessage): Promise<void>;
  /** Asks the client; resolves with its result as it came (the upstream that asked checks it). */
  sendRequest(request: OutboundMessage, options?: { signal?: AbortSignal; timeout?: number }): Promise<Record<string, unknown>>;
}

/** A 2026-07-28 request: it arrived on `/mcp` with no session (REST and the CLI have none either, but speak no MCP revision). */
export function isSessionlessMcp(call: Pick<DownstreamCall, 'channel' | 'sessionId'>): boolean {
  return call.channel === 'mcp' && call.sessionId === undefined;
}

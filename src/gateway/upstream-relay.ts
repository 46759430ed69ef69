import { ErrorCode, McpError, type LoggingLevel, type LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { UpstreamEventSink } from '../upstream/upstream-connection.js';
import type { CallTracker } from './call-tracker.js';
import type { DownstreamCall } from './downstream-call.js';
import type { SessionRegistry } from './session-registry.js';

const LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const PassThroughResult = z.object({}).loose();

/** The client capability each server-to-client request needs. */
const NEEDED_CAPABILITY: Record<string, 'sampling' | 'elicitation' | 'roots'> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** A human answering an elicitation or reviewing a sampling request may take a while. */
const CLIENT_REQUEST_TIMEOUT_MS = 10 * 60 * 1000;

/**
 * Carries what upstreams send on their own back to the right downstream session:
 * server-to-client requests and log messages to the session whose call caused them,
 * resource updates to the sessions subscribed to that resource.
 */
export class UpstreamRelay implements UpstreamEventSink {
  constructor(
    private readonly tracker: CallTracker,
    private readonly sessions: SessionRegistry,
  ) {}

  async onServerRequest(
    server: string,
    request: { method: string; params?: Record<string, unknown> | undefined },
    signal: AbortSignal,
    owner: unknown,
  ): Promise<Record<string, unknown>> {
    // Exact when the wire says which request this belongs to; else by the calls in flight.
    const call = (owner as DownstreamCall | undefined) ?? this.tracker.attribute(server);
    if (call === 'ambiguous') {
      throw new McpError(ErrorCode.InternalError, `${request.method} refused: calls from several clients are in flight on "${server}" and the request names none of them`);
    }
    if (!call) {
      throw new McpError(ErrorCode.InvalidRequest, `${request.method} is relayed only while a client's request to "${server}" is in flight`);
    }
    const capability = NEEDED_CAPABILITY[request.method];
    const declared = capability ? call.clientCapabilities?.[capability] : undefined;
    if (!declared || (request.method === 'elicitation/create' && !supportsElicitationMode(declared, request.params))) {
      throw new McpError(ErrorCode.MethodNotFound, `the client does not support ${request.method}`);
    }
    const cancelled = AbortSignal.any([signal, call.signal]);
    return call.sendRequest({ method: request.method, params: request.params } as never, PassThroughResult, {
      signal: cancelled,
      timeout: CLIENT_REQUEST_TIMEOUT_MS,
    });
  }

  onLogMessage(server: string, params: LoggingMessageNotification['params'], owner: unknown): void {
    const labelled = { ...params, logger: params.logger ? `${server}/${params.logger}` : server };
    const notification = { method: 'notifications/message' as const, params: labelled };
    const call = (owner as DownstreamCall | undefined) ?? this.tracker.attribute(server);
    if (call === 'ambiguous') return;
    if (call) {
      const session = this.sessions.get(call.sessionId);
      if (!session || allows(session.logLevel, params.level)) void call.sendNotification(notification).catch(() => {});
      return;
    }
    // Not caused by any request: only sessions that asked for logs (with logging/setLevel) get it.
    for (const session of this.sessions.all()) {
      if (session.logLevel && allows(session.logLevel, params.level)) {
        session.server.notification(notification).catch(() => {});
      }
    }
  }

  onResourceUpdated(server: string, uri: string): void {
    for (const session of this.sessions.all()) {
      for (const [exposedUri, route] of session.subscriptions) {
        if (route.server === server && route.originalUri === uri) {
          session.server.sendResourceUpdated({ uri: exposedUri }).catch(() => {});
        }
      }
    }
  }
}

/** The most verbose level any session asked for, to set on upstreams. */
export function mostVerbose(levels: Iterable<LoggingLevel | undefined>): LoggingLevel | undefined {
  let best: number | undefined;
  for (const level of levels) {
    if (level === undefined) continue;
    const rank = LEVELS.indexOf(level);
    if (best === undefined || rank < best) best = rank;
  }
  return best === undefined ? undefined : LEVELS[best];
}

function allows(threshold: LoggingLevel | undefined, level: LoggingLevel): boolean {
  return threshold === undefined || LEVELS.indexOf(level) >= LEVELS.indexOf(threshold);
}

function supportsElicitationMode(declared: object, params: Record<string, unknown> | undefined): boolean {
  const mode = (params?.mode as string | undefined) ?? 'form';
  const modes = declared as { form?: unknown; url?: unknown };
  // A client that declares `elicitation: {}` supports form mode only (2025-11-25).
  if (modes.form === undefined && modes.url === undefined) return mode === 'form';
  return modes[mode as 'form' | 'url'] !== undefined;
}

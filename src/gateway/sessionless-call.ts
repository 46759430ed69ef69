import { CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY, ProtocolErrorCode, type ClientCapabilities, type LoggingLevel, type RequestId } from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';
import type { DownstreamCall, OutboundMessage } from './downstream-call.js';
import { WireMcpError } from './error-mapping.js';
import { allows } from './log-levels.js';

/** What a 2026-07-28 request brings to the call serving it. */
export interface SessionlessRequest {
  id: RequestId;
  /** The request's `_meta` envelope (its reserved keys), as the SDK lifts it out of the params. */
  envelope: Record<string, unknown> | undefined;
  signal: AbortSignal;
}

/**
 * A 2026-07-28 request. Its client declared its capabilities in the request itself, and they
 * are passed on as declared (an upstream asked on its behalf may tailor what it asks for). It
 * cannot be sent requests mid-call: it is asked through `input_required` results, a 2026
 * upstream's passing through, a 2025 upstream's requests turned into them by `ModernCallBridge`
 * (which replaces `sendRequest` on the methods that allow it); elsewhere such a request is
 * refused. Log messages reach the client only at or above the level the request named; a
 * request that named none asked for no logs. What does reach it goes to `notify`.
 *
 * One builder for the SDK's per-request server and the sessionless fast path, so that both
 * hand their calls the same client.
 */
export function sessionlessCall(access: Access, request: SessionlessRequest, notify: (notification: OutboundMessage) => Promise<void>): DownstreamCall {
  const logLevel = request.envelope?.[LOG_LEVEL_META_KEY] as LoggingLevel | undefined;
  return {
    principal: access.principal.id,
    access,
    channel: 'mcp',
    sessionId: undefined,
    requestId: request.id,
    clientCapabilities: request.envelope?.[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined,
    logLevel,
    signal: request.signal,
    sendNotification: async (notification) => {
      if (notification.method === 'notifications/message') {
        const level = notification.params?.level as LoggingLevel | undefined;
        if (!logLevel || !level || !allows(logLevel, level)) return;
      }
      await notify(notification);
    },
    sendRequest: async (outbound) => {
      throw new WireMcpError(ProtocolErrorCode.MethodNotFound, `the client cannot be sent ${outbound.method} during a 2026-07-28 request`);
    },
  };
}

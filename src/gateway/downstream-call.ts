import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { Access } from '../auth/access-policy.js';
import type { ClientCapabilities, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';

/**
 * A downstream request being served: what is needed to send messages back to the client
 * that made it, on the stream of that very request.
 */
export interface DownstreamCall {
  /** Who is calling, for audit; `anonymous` without authentication. */
  principal: string;
  /** What the caller may use, evaluated for this request. */
  access: Access;
  /** Where the request came in. */
  channel: 'mcp' | 'rest' | 'cli';
  sessionId: string | undefined;
  /** The JSON-RPC id of the client's request, for logs. */
  requestId?: string | number | undefined;
  clientCapabilities: ClientCapabilities | undefined;
  signal: AbortSignal;
  sendNotification: (notification: ServerNotification) => Promise<void>;
  sendRequest: RequestHandlerExtra<ServerRequest, ServerNotification>['sendRequest'];
}

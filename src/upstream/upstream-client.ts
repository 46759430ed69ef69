import { Client, type ClientCapabilities, type ClientContext, type LoggingMessageNotificationParams } from '@modelcontextprotocol/client';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import { SPOKEN_PROTOCOL_VERSIONS } from './era-negotiation.js';

/**
 * What the gateway tells upstreams it can do. Sampling and elicitation are honoured only for a
 * downstream client that declared them, while a call of that client is in flight; otherwise the
 * upstream gets an error. Roots are always answered: by the calling client, or with the server's
 * configured `roots`.
 */
export const CLIENT_CAPABILITIES: ClientCapabilities = { sampling: {}, elicitation: { form: {}, url: {} }, roots: {} };

/** Pages followed per list, against a server whose cursors never end. */
const MAX_LIST_PAGES = 100;

/** Where what an upstream sends on its own goes. */
export interface UpstreamClientHandlers {
  /** A list changed (a 2025 server says so unsolicited, a 2026 one on the `subscriptions/listen` stream). */
  onListChanged(client: Client, which: { tools?: boolean; prompts?: boolean; resources?: boolean }): void;
  onLogMessage(params: LoggingMessageNotificationParams): void;
  onResourceUpdated(uri: string): void;
  /** A server-to-client request (sampling, elicitation, roots) of a 2025 server; resolves with the answer to send. */
  onServerRequest(request: { method: string; params?: Record<string, unknown> | undefined }, signal: AbortSignal): Promise<Record<string, unknown>>;
  onError(error: Error): void;
}

export interface UpstreamClientOptions {
  /** How long a stdio server may take over `server/discover` (silence there means a 2025 server). */
  stdioProbeTimeoutMs?: number | undefined;
}

/**
 * The SDK client for one connection attempt to an upstream: it probes with `server/discover`
 * and speaks 2026-07-28 to servers that offer it, `initialize` to the others; it hands an
 * `input_required` answer back instead of fulfilling it (the caller's client has the input to
 * give), and passes what the server sends on its own to `handlers`.
 */
export function createUpstreamClient(options: UpstreamClientOptions, handlers: UpstreamClientHandlers): Client {
  const client = new Client(
    { name: GATEWAY_NAME, version: GATEWAY_VERSION },
    {
      capabilities: CLIENT_CAPABILITIES,
      supportedProtocolVersions: [...SPOKEN_PROTOCOL_VERSIONS],
      versionNegotiation: { mode: 'auto', ...(options.stdioProbeTimeoutMs !== undefined ? { probe: { timeoutMs: options.stdioProbeTimeoutMs } } : {}) },
      inputRequired: { autoFulfill: false },
      listMaxPages: MAX_LIST_PAGES,
    },
  );
  client.onerror = (error) => handlers.onError(error);
  client.setNotificationHandler('notifications/tools/list_changed', () => handlers.onListChanged(client, { tools: true }));
  client.setNotificationHandler('notifications/prompts/list_changed', () => handlers.onListChanged(client, { prompts: true }));
  client.setNotificationHandler('notifications/resources/list_changed', () => handlers.onListChanged(client, { resources: true }));
  client.setNotificationHandler('notifications/message', (notification) => handlers.onLogMessage(notification.params));
  client.setNotificationHandler('notifications/resources/updated', (notification) => handlers.onResourceUpdated(notification.params.uri));
  const relay = (request: { method: string; params?: Record<string, unknown> }, ctx: ClientContext) =>
    handlers.onServerRequest({ method: request.method, params: request.params }, ctx.mcpReq.signal);
  // The answer is whatever the downstream client gave; the SDK checks its shape on the way out.
  client.setRequestHandler('sampling/createMessage', relay as never);
  client.setRequestHandler('elicitation/create', relay as never);
  client.setRequestHandler('roots/list', relay as never);
  return client;
}

import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolRequest, CallToolResult, ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { toolCallFailure, unknownTool } from './error-mapping.js';

export interface ToolCallContext {
  signal?: AbortSignal | undefined;
  /** Sends a notification back on the downstream request that made this call. */
  sendNotification?: ((notification: ServerNotification) => Promise<void>) | undefined;
}

/**
 * Routes one `tools/call` to the upstream that owns the exposed name, by table lookup.
 * The upstream's result comes back unchanged; progress travels back under the client's own
 * token, and the client's cancellation reaches the upstream through `signal`.
 */
export async function callTool(
  catalog: LiveCatalog,
  upstreams: UpstreamPool,
  params: CallToolRequest['params'],
  context: ToolCallContext = {},
): Promise<CallToolResult> {
  const route = catalog.current.routes.get(params.name);
  const upstream = route && upstreams.get(route.server);
  if (!route || !upstream) throw unknownTool(params.name);

  const options: RequestOptions = { signal: context.signal };
  const progressToken = params._meta?.progressToken;
  if (progressToken !== undefined && context.sendNotification) {
    const send = context.sendNotification;
    options.resetTimeoutOnProgress = true;
    options.onprogress = (progress) => {
      void send({ method: 'notifications/progress', params: { ...progress, progressToken } }).catch(() => {});
    };
  }
  try {
    return (await upstream.request('tools/call', { ...params, name: route.originalName }, options)) as CallToolResult;
  } catch (error) {
    return toolCallFailure(error);
  }
}

import type { CallToolRequest, CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import type { DownstreamCall } from './downstream-call.js';
import { toolCallFailure, unknownTool } from './error-mapping.js';
import { forward, type ForwardDeps } from './forward.js';

/** Routes one `tools/call` to the upstream that owns the exposed name, by table lookup. */
export async function callTool(
  deps: ForwardDeps & { catalog: LiveCatalog },
  params: CallToolRequest['params'],
  call: DownstreamCall,
): Promise<CallToolResult> {
  const route = deps.catalog.current.routes.get(params.name);
  if (!route || !deps.upstreams.get(route.server)) throw unknownTool(params.name);
  try {
    return (await forward(deps, route.server, 'tools/call', { ...params, name: route.originalName }, call)) as CallToolResult;
  } catch (error) {
    return toolCallFailure(error);
  }
}

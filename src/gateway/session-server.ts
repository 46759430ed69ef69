import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { LiveCatalog } from '../catalog/live-catalog.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import { callTool } from './tool-calls.js';
import { toolListPage } from './tool-list.js';

export interface SessionServerDeps {
  catalog: LiveCatalog;
  upstreams: UpstreamPool;
  pageSize: number;
}

const INSTRUCTIONS =
  'Conflux gateway: tools from several MCP servers, each named <server>__<tool>. ' +
  'A tool error that names an upstream means that server failed, not that the request was wrong.';

/** The MCP server that one downstream session talks to. Handlers read shared, cached state. */
export function createSessionServer(deps: SessionServerDeps): Server {
  const server = new Server(
    { name: GATEWAY_NAME, version: GATEWAY_VERSION },
    { capabilities: { tools: { listChanged: true } }, instructions: INSTRUCTIONS },
  );
  server.setRequestHandler(ListToolsRequestSchema, (request) =>
    toolListPage(deps.catalog.current.tools, request.params?.cursor, deps.pageSize),
  );
  server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
    callTool(deps.catalog, deps.upstreams, request.params, {
      signal: extra.signal,
      sendNotification: extra.sendNotification,
    }),
  );
  return server;
}

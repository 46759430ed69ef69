/**
 * Upstream MCP servers for the benchmarks.
 *
 *   node --import tsx bench/upstreams.ts http  [--endpoints N] [--tools M] [--delay-ms D]
 *       one process serving N Streamable HTTP MCP endpoints at /mcp/0 ... /mcp/N-1; prints
 *       `listening http://127.0.0.1:PORT`
 *   node --import tsx bench/upstreams.ts stdio [--tools M]
 *
 * Every endpoint offers `echo` (answers at once, or after --delay-ms) and M-1 filler tools.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { endpoints: { type: 'string', default: '1' }, tools: { type: 'string', default: '1' }, 'delay-ms': { type: 'string', default: '0' } },
});
const toolCount = Number(values.tools);
const delayMs = Number(values['delay-ms']);
const VERBS = ['create', 'list', 'get', 'update', 'delete', 'search', 'export', 'import', 'sync', 'archive'];
const THINGS = ['issue', 'file', 'user', 'invoice', 'message', 'event', 'record', 'report', 'task', 'note'];

function tools(endpoint: number): Tool[] {
  const list: Tool[] = [{ name: 'echo', description: 'Echoes the text back', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }];
  for (let i = 1; i < toolCount; i++) {
    const verb = VERBS[i % VERBS.length]!;
    const thing = THINGS[Math.floor(i / VERBS.length) % THINGS.length]!;
    list.push({
      name: `${verb}_${thing}_${i}`,
      description: `${verb} a ${thing} in service ${endpoint} (tool ${i}); returns the ${thing} as JSON.`,
      inputSchema: { type: 'object', properties: { id: { type: 'string', description: `the ${thing} id` }, limit: { type: 'number' } }, required: ['id'] },
    });
  }
  return list;
}

function mcpServer(endpoint: number): Server {
  const server = new Server({ name: `bench-${endpoint}`, version: '1.0.0' }, { capabilities: { tools: {} } });
  const list = tools(endpoint);
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: list }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const text = String((request.params.arguments as { text?: unknown } | undefined)?.text ?? request.params.name);
    return { content: [{ type: 'text', text }] };
  });
  return server;
}

if (positionals[0] === 'stdio') {
  await mcpServer(0).connect(new StdioServerTransport());
} else {
  const endpoints = Number(values.endpoints);
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const match = /^\/mcp\/(\d+)$/.exec(req.url ?? '');
    if (!match || Number(match[1]) >= endpoints) return void res.writeHead(404).end();
    const id = req.headers['mcp-session-id'];
    let transport = typeof id === 'string' ? sessions.get(id) : undefined;
    if (!transport) {
      if (id) return void res.writeHead(404).end();
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        enableJsonResponse: true,
        onsessioninitialized: (sid) => void sessions.set(sid, created),
        onsessionclosed: (sid) => void sessions.delete(sid),
      });
      await mcpServer(Number(match[1])).connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  };
  // Node does not wait for a listener: a failure is an unhandled rejection, which ends this
  // process (Node's default) like any other failure of it.
  const http = createServer((req, res) => void answer(req, res));
  http.keepAliveTimeout = 60_000;
  http.on('connection', (socket) => socket.setNoDelay(true));
  http.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${(http.address() as AddressInfo).port}`));
  process.on('SIGTERM', () => process.exit(0));
}

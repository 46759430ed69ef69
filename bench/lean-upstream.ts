/**
 * A lean Streamable HTTP MCP upstream, written on node:http without the SDK: one `echo` tool,
 * plain JSON answers (never SSE), no GET stream. The SDK server costs about as much CPU per
 * call as the gateway does, so on a small host it hides what a hop costs; this one answers a
 * call in a few microseconds and leaves the hop as the thing measured.
 *
 *   node --import tsx bench/lean-upstream.ts    prints `listening http://127.0.0.1:PORT` and
 *                                               serves MCP at /mcp/0 (any /mcp/N is the same)
 *
 * It speaks the 2025-11-25 session protocol: `initialize` opens a session (Mcp-Session-Id),
 * notifications are accepted with 202, `tools/list` and `tools/call` need a known session,
 * DELETE ends one. Any other request (a 2026-07-28 `server/discover` probe among them) is
 * answered with "method not found", which tells a negotiating client to use `initialize`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const PROTOCOL_VERSION = '2025-11-25';
const TOOLS = JSON.stringify([{ name: 'echo', description: 'Echoes the text back', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }]);
const ENDPOINT = /^\/mcp\/\d+$/;

interface JsonRpcRequest {
  id?: string | number;
  method?: string;
  params?: { name?: unknown; arguments?: { text?: unknown } };
}

const sessions = new Set<string>();

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}

const result = (id: JsonRpcRequest['id'], value: string) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${value}}`;
const failure = (id: JsonRpcRequest['id'] | null, code: number, message: string) => `{"jsonrpc":"2.0","id":${JSON.stringify(id ?? null)},"error":{"code":${code},"message":${JSON.stringify(message)}}}`;

function answer(req: IncomingMessage, res: ServerResponse, text: string): void {
  let message: JsonRpcRequest;
  try {
    message = JSON.parse(text) as JsonRpcRequest;
  } catch {
    return send(res, 400, failure(null, -32700, 'Parse error'));
  }
  if (message.id === undefined) return void res.writeHead(202).end(); // a notification
  const session = req.headers['mcp-session-id'];
  if (message.method === 'initialize') {
    const id = randomUUID();
    sessions.add(id);
    const init = { protocolVersion: PROTOCOL_VERSION, capabilities: { tools: {} }, serverInfo: { name: 'lean-echo', version: '1.0.0' } };
    return send(res, 200, result(message.id, JSON.stringify(init)), { 'mcp-session-id': id });
  }
  const known = typeof session === 'string' && sessions.has(session);
  switch (message.method) {
    case 'tools/list':
    case 'tools/call':
    case 'ping':
      if (!known) return send(res, session === undefined ? 400 : 404, failure(message.id, -32001, 'Session not found'));
      break;
    default:
      return send(res, 200, failure(message.id, -32601, 'Method not found'));
  }
  if (message.method === 'ping') return send(res, 200, result(message.id, '{}'));
  if (message.method === 'tools/list') return send(res, 200, result(message.id, `{"tools":${TOOLS}}`));
  if (message.params?.name !== 'echo') return send(res, 200, failure(message.id, -32602, `Unknown tool: ${String(message.params?.name)}`));
  const echoed = JSON.stringify(String(message.params.arguments?.text ?? ''));
  return send(res, 200, result(message.id, `{"content":[{"type":"text","text":${echoed}}]}`));
}

const server = createServer((req, res) => {
  if (!ENDPOINT.test(req.url ?? '')) return void res.writeHead(404).end();
  if (req.method === 'DELETE') {
    const session = req.headers['mcp-session-id'];
    return void res.writeHead(typeof session === 'string' && sessions.delete(session) ? 200 : 404).end();
  }
  // No server-initiated stream: the specification lets a server refuse the GET with 405.
  if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST, DELETE' }).end();
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => answer(req, res, Buffer.concat(chunks).toString()));
});
server.keepAliveTimeout = 60_000;
server.on('connection', (socket) => socket.setNoDelay(true));
server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}`));
process.on('SIGTERM', () => process.exit(0));

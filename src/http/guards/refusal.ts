import type { Context } from 'hono';
import { BAD_REQUEST, jsonRpcError } from '../json-rpc-errors.js';

/** The MCP endpoints (Streamable HTTP, and HTTP+SSE for older clients) answer in JSON-RPC; every other route in the REST error shape. */
const MCP_PATHS = new Set(['/mcp', '/sse', '/messages']);

/**
 * A refusal by a guard, shaped for the surface the request addressed: a JSON-RPC error (code
 * -32000, as the SDK's transport refuses at the HTTP level) on the MCP endpoints, `{error: {code, message}}`
 * elsewhere. One place, so every guard answers each surface the same way.
 */
export function refusal(c: Context, status: number, code: string, message: string): Response {
  if (MCP_PATHS.has(c.req.path)) return jsonRpcError(status, BAD_REQUEST, message);
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { 'content-type': 'application/json' } });
}

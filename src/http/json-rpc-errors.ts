/** JSON-RPC error bodies for failures detected before a message reaches an MCP server. */
export function jsonRpcError(status: number, code: number, message: string, id: string | number | null = null): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
/** The codes the SDK's transport uses for HTTP-level refusals, kept the same here. */
export const BAD_REQUEST = -32000;
export const SESSION_NOT_FOUND = -32001;
/** Refusals of authentication; the HTTP status (401/403) and `WWW-Authenticate` carry the detail. */
export const UNAUTHORIZED = -32004;
/** 2026-07-28 (SEP-2243): a standard or `Mcp-Param-*` header missing, malformed, or disagreeing with the body. */
export const HEADER_MISMATCH = -32020;

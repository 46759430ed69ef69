import type { ConfluxError } from '../errors.js';
import { MCP_ANSWERS } from '../gateway/error-mapping.js';
import { RateLimitedError } from '../limits/errors.js';
import { API_ANSWERS } from './api/api-errors.js';

/** JSON-RPC error bodies for failures detected before a message reaches an MCP server. */
export function jsonRpcError(status: number, code: number, message: string, id: string | number | null = null, data?: unknown): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message, ...(data === undefined ? {} : { data }) }, id }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * A typed error that refuses a request on an MCP wire before it reaches a session (its
 * authentication, the per-principal rate limit): the code and data an MCP client reads for its
 * kind everywhere else (`MCP_ANSWERS`), with the HTTP status the kind has over HTTP
 * (`API_ANSWERS`). `WWW-Authenticate` is the authentication middleware's to add.
 */
export function jsonRpcRefusal(error: ConfluxError): Response {
  const { code, data } = MCP_ANSWERS[error.kind];
  const response = jsonRpcError(API_ANSWERS[error.kind].status, code, error.message, null, data ? error.clientDetails() : undefined);
  if (error instanceof RateLimitedError) response.headers.set('Retry-After', String(error.retryAfterSeconds));
  return response;
}

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
/** The codes the SDK's transport uses for HTTP-level refusals, kept the same here. */
export const BAD_REQUEST = -32000;
export const SESSION_NOT_FOUND = -32001;
/** 2026-07-28 (SEP-2243): a standard or `Mcp-Param-*` header missing, malformed, or disagreeing with the body. */
export const HEADER_MISMATCH = -32020;

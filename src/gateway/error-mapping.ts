import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AccessDeniedError } from '../auth/access-policy.js';
import { LimitExceededError, RateLimitedError } from '../limits/errors.js';
import { UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from '../upstream/errors.js';

/** JSON-RPC code for refusals by the gateway's own limits (implementation-defined server error range). */
export const LIMIT_ERROR = -32000;
/** JSON-RPC code for requests outside the caller's rights (implementation-defined server error range). */
export const ACCESS_DENIED = -32003;

/**
 * The one place where failures become what a client sees. Upstream faults are tool errors
 * (`isError: true`) naming the upstream and the cause, so a model can read and act on them;
 * JSON-RPC errors from the upstream pass through unchanged; anything else is an internal error.
 */
export function toolCallFailure(error: unknown): CallToolResult {
  if (isUpstreamFault(error)) {
    return { isError: true, content: [{ type: 'text', text: error.message }] };
  }
  throw asMcpError(error);
}

export function isUpstreamFault(
  error: unknown,
): error is UpstreamUnavailableError | UpstreamTimeoutError | UpstreamConnectionLostError {
  return (
    error instanceof UpstreamUnavailableError ||
    error instanceof UpstreamTimeoutError ||
    error instanceof UpstreamConnectionLostError
  );
}

export function asMcpError(error: unknown): McpError {
  if (error instanceof McpError) return error;
  if (error instanceof RateLimitedError) return new McpError(LIMIT_ERROR, error.message, { retryAfter: error.retryAfterSeconds, scope: error.scope });
  if (error instanceof LimitExceededError) return new McpError(LIMIT_ERROR, error.message);
  if (error instanceof HiddenToolError) return unknownTool(error.tool);
  if (error instanceof AccessDeniedError) return new McpError(ACCESS_DENIED, error.message);
  if (isUpstreamFault(error)) return new McpError(ErrorCode.InternalError, error.message);
  return new McpError(ErrorCode.InternalError, error instanceof Error ? error.message : String(error));
}

/** A tool name that does not exist for the caller (typed, so that REST can answer 404). */
export class UnknownToolError extends McpError {
  constructor(readonly tool: string) {
    super(ErrorCode.InvalidParams, `Unknown tool: "${tool}"`);
    this.name = 'UnknownToolError';
  }
}

export function unknownTool(name: string): UnknownToolError {
  return new UnknownToolError(name);
}

/**
 * A tool that exists but that the caller may not see. It is audited as a refusal (it is an
 * `AccessDeniedError`, and its message tells the auditor why) but answered on every surface
 * exactly as an unknown tool, so that a caller cannot probe which names exist beyond its rights.
 */
export class HiddenToolError extends AccessDeniedError {
  constructor(readonly tool: string) {
    super(`Access denied: the tool "${tool}" is outside the caller's rights (answered as an unknown tool)`);
    this.name = 'HiddenToolError';
  }
}

export function unknownPrompt(name: string): McpError {
  return new McpError(ErrorCode.InvalidParams, `Unknown prompt: "${name}"`);
}

/** -32002 is the MCP specification's code for a resource that does not exist. */
export function resourceNotFound(uri: string): McpError {
  return new McpError(-32002, `Resource not found: ${uri}`, { uri });
}

import { randomUUID } from 'node:crypto';
import { ProtocolError as UpstreamProtocolError } from '@modelcontextprotocol/client';
import { ProtocolError, ProtocolErrorCode, type CallToolResult } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import { AccessDeniedError } from '../auth/access-policy.js';
import { ConfluxError, type ErrorKind } from '../errors.js';
import { authorizationRequiredText } from '../upstream/auth/authorization-required.js';
import { UpstreamAuthError } from '../upstream/auth/upstream-auth.js';

/** JSON-RPC code for refusals by the gateway's own limits (implementation-defined server error range). */
export const LIMIT_ERROR = -32000;
/** JSON-RPC code for requests outside the caller's rights (implementation-defined server error range). */
export const ACCESS_DENIED = -32003;
/** JSON-RPC code for a request without credentials the gateway accepts; over HTTP, the 401 and `WWW-Authenticate` carry the detail. */
export const UNAUTHORIZED = -32004;
/**
 * The codes SDK 1.x used for a closed connection and a cancelled or timed-out request. SDK 2
 * reports those locally only (`SdkErrorCode`), but the gateway answers them on the wire, and
 * clients already read these values.
 */
export const CONNECTION_CLOSED = -32000;
export const REQUEST_CANCELLED = -32001;

/** How an MCP client is answered an error of a kind. */
interface McpAnswer {
  code: number;
  /** Whether the error's `clientDetails()` are sent as `data`. */
  data: boolean;
}

/**
 * Every kind's JSON-RPC code. An upstream's faults are -32603 with the message alone (it names
 * the server), as SDK 1.x clients have always read them; a limit's refusal says in `data` when
 * to retry. The REST API's own errors never reach MCP; their kinds are answered as MCP answers
 * such failures elsewhere (-32602 for a name that does not exist, as for tools and resources).
 */
export const MCP_ANSWERS: Readonly<Record<ErrorKind, McpAnswer>> = {
  invalid: { code: ProtocolErrorCode.InvalidParams, data: true },
  unauthenticated: { code: UNAUTHORIZED, data: false },
  denied: { code: ACCESS_DENIED, data: false },
  not_found: { code: ProtocolErrorCode.InvalidParams, data: true },
  conflict: { code: ProtocolErrorCode.InvalidParams, data: true },
  rate_limited: { code: LIMIT_ERROR, data: true },
  limit_exceeded: { code: LIMIT_ERROR, data: false },
  // The limiter refusing while Redis is down is a rate limit refusal to the client (it retries after `data.retryAfter`).
  unavailable: { code: LIMIT_ERROR, data: true },
  upstream_unavailable: { code: ProtocolErrorCode.InternalError, data: false },
  upstream_timeout: { code: ProtocolErrorCode.InternalError, data: false },
};

/** The kinds that are an upstream's fault: a tool call reports them as a tool error, for the model to read. */
const UPSTREAM_FAULTS: ReadonlySet<ErrorKind> = new Set(['upstream_unavailable', 'upstream_timeout']);

/**
 * The one place where failures become what a client sees. Upstream faults are tool errors
 * (`isError: true`) naming the upstream and the cause, so a model can read and act on them;
 * anything else is rethrown as it is, so the audit row keeps its message and the surface's
 * mapping (`asMcpError`, or the REST one) decides what the client reads.
 */
export function toolCallFailure(error: unknown, caller: { speaks2026: boolean }): CallToolResult {
  // A user's missing authorisation first, whatever fault it caused: its URL is what the user needs.
  const authFailure = upstreamAuthErrorIn(error);
  if (authFailure?.kind === 'authorization-required') return upstreamAuthResult(authFailure);
  if (isUpstreamFault(error)) {
    return { isError: true, content: [{ type: 'text', text: error.message }] };
  }
  if (authFailure) return upstreamAuthResult(authFailure);
  // -32021 names what the gateway's own request to the upstream lacked, a code 2026-07-28
  // defined. A caller that does not speak that revision (a 2025 session, REST, the CLI) gets
  // the refusal in its own idiom, a tool error, as the SDK's legacy shim gives it directly.
  if (!caller.speaks2026 && isProtocolError(error) && error.code === MISSING_CLIENT_CAPABILITY) {
    const required = (error.data as { requiredCapabilities?: Record<string, unknown> } | undefined)?.requiredCapabilities ?? {};
    // Extensions are named by their ids (`io.modelcontextprotocol/tasks`), the rest by capability.
    const wanted = Object.entries(required).flatMap(([name, value]) => (name === 'extensions' && value && typeof value === 'object' ? Object.keys(value) : [name]));
    const text = wanted.length > 0 ? `This tool needs a client that supports ${wanted.join(', ')}; this client did not declare it.` : unprefixed(error.message);
    return { isError: true, content: [{ type: 'text', text }] };
  }
  throw error;
}

/** The 2026-07-28 code for a request that needs a capability its client did not declare. */
const MISSING_CLIENT_CAPABILITY = -32021;

/**
 * Failures whose message was written for the caller: upstream answers, the gateway's typed
 * errors (`ConfluxError`: upstream faults, the caller's rights and limits), an upstream's
 * authentication, a cancellation. Anything else (a bug's TypeError, a database driver's error)
 * may quote internals (SQL, paths, stack frames) and is never shown to a client.
 */
export function isExpectedError(error: unknown): boolean {
  return isProtocolError(error) || error instanceof ConfluxError || upstreamAuthErrorIn(error) !== undefined || isCancellation(error);
}

/**
 * Why the gateway cannot act towards an upstream (its credential, or the user's authorisation),
 * when `error` is that or was caused by it. Its message names the server and the reason, never
 * a secret; an `authorization-required` one carries the URL the user must open.
 */
export function upstreamAuthErrorIn(error: unknown): UpstreamAuthError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof UpstreamAuthError) return current;
    current = current.cause;
  }
  return undefined;
}

/** The tool error a caller reads for an upstream the gateway cannot authenticate to: for a user who must authorise it, what to do and the URL. */
export function upstreamAuthResult(error: UpstreamAuthError): CallToolResult {
  const text = error.kind === 'authorization-required' ? authorizationRequiredText(error) : `"${error.server}" could not be authenticated to: ${error.message}`;
  const result: CallToolResult = { isError: true, content: [{ type: 'text', text }] };
  // The URL's `state` completes the user's authorization: only the caller reads it, never an audit row or a log.
  if (error.kind === 'authorization-required') recordedTexts.set(result, `authorization required for "${error.server}"`);
  return result;
}

/** What audit rows and logs keep of results whose text is for the caller's eyes only. */
const recordedTexts = new WeakMap<CallToolResult, string>();

/** The text an audit row or a log line keeps of `result`'s error, when it must differ from what the caller reads (undefined: the caller's text will do). */
export function recordedTextOf(result: CallToolResult): string | undefined {
  return recordedTexts.get(result);
}

/** An unexpected failure, logged whole under `incident`; `message` is all the client reads of it. */
export interface Incident {
  incident: string;
  message: string;
}

/**
 * Logs an unexpected failure with a fresh incident id (error level: it is a bug or a broken
 * dependency, an operator's to look at) and returns the text a client is given instead: the
 * id alone, which an operator finds in the log.
 */
export function reportIncident(error: unknown, logger: Pick<Logger, 'error'>, context: Record<string, unknown> = {}): Incident {
  const incident = randomUUID();
  logger.error({ ...context, err: error, incident }, 'unexpected error; the client was given only the incident id');
  return { incident, message: `Internal error (incident ${incident})` };
}

/** The text a client may read of `error`: its own message when expected, else an incident id (logged). */
export function clientMessage(error: unknown, logger: Pick<Logger, 'error'>, context?: Record<string, unknown>): string {
  if (isExpectedError(error)) return asMcpError(error, logger).message;
  return reportIncident(error, logger, context).message;
}

/**
 * A JSON-RPC error, from either SDK package. The server and client packages each bundle their
 * own copy of the protocol core, so an upstream's error (raised by the client package) is not
 * an `instanceof` the server package's `ProtocolError`, nor the other way round.
 */
export function isProtocolError(error: unknown): error is ProtocolError | UpstreamProtocolError {
  return error instanceof ProtocolError || error instanceof UpstreamProtocolError;
}

/** An upstream that is unavailable, lost its connection, answered nonsense or did not answer in time. */
export function isUpstreamFault(error: unknown): error is ConfluxError {
  return error instanceof ConfluxError && UPSTREAM_FAULTS.has(error.kind);
}

/**
 * Any failure as the JSON-RPC error a client is sent, its message without the SDK's prefix
 * (see `WireMcpError`). Every error that leaves the gateway over MCP passes through here.
 * An unexpected error becomes -32603 with an incident id only; the error itself is logged.
 */
export function asMcpError(error: unknown, logger: Pick<Logger, 'error'>): WireMcpError {
  if (error instanceof WireMcpError) return error;
  if (isProtocolError(error)) return new WireMcpError(error.code, error.message, error.data);
  if (error instanceof HiddenToolError) return unknownTool(error.tool);
  // A user's missing authorisation wins over the fault it caused: its URL is what the user needs.
  const authFailure = upstreamAuthErrorIn(error);
  if (authFailure && (authFailure.kind === 'authorization-required' || !(error instanceof ConfluxError))) {
    const text = (upstreamAuthResult(authFailure).content[0] as { text: string }).text;
    return new WireMcpError(ProtocolErrorCode.InternalError, text, { server: authFailure.server, ...(authFailure.authorizationUrl ? { authorizationUrl: authFailure.authorizationUrl } : {}) });
  }
  if (error instanceof ConfluxError) {
    const answer = MCP_ANSWERS[error.kind];
    return new WireMcpError(answer.code, error.message, answer.data ? error.clientDetails() : undefined);
  }
  // An aborted signal rethrows its reason as it is (often a plain string): the call was
  // cancelled, by the client or by its session closing, which is no incident.
  if (isCancellation(error)) return new WireMcpError(REQUEST_CANCELLED, `Request cancelled: ${failureText(error)}`);
  const { incident, message } = reportIncident(error, logger);
  return new WireMcpError(ProtocolErrorCode.InternalError, message, { incident });
}

/** The reason of an aborted signal: a string given to `abort()`, or the default AbortError. */
function isCancellation(error: unknown): boolean {
  return typeof error === 'string' || (error instanceof Error && error.name === 'AbortError');
}

/** A failure's own text without the SDK's prefixes, for the audit trail and logs (never for a client: see `clientMessage`). */
export function failureText(error: unknown): string {
  return unprefixed(error instanceof Error ? error.message : String(error));
}

/** `MCP error <code>: ` as SDK 1.x's `McpError` constructor writes it (and its clients add on receipt). */
const SDK_PREFIX = /^MCP error -?\d+: /;

/**
 * `message` without the `MCP error <code>: ` prefixes in front of it. SDK 1.x adds one each
 * time an error is built from a message, and an upstream built on it already sends one on the
 * wire, so an upstream's error can arrive here with one or two.
 */
export function unprefixed(message: string): string {
  let text = message;
  while (SDK_PREFIX.test(text)) text = text.replace(SDK_PREFIX, '');
  return text;
}

/**
 * A `ProtocolError` whose `message` is the text alone, without the prefixes an upstream's
 * error may carry. The server sends `message` as it is, and an SDK 1.x client prefixes what it
 * receives once: sent as this, a client reads the prefix at most once; REST and broadcasts,
 * which quote the message, read no prefix at all.
 */
export class WireMcpError extends ProtocolError {
  constructor(code: number, message: string, data?: unknown) {
    super(code, unprefixed(message), data);
  }
}

/** A tool name that does not exist for the caller (typed, so that REST can answer 404). */
export class UnknownToolError extends WireMcpError {
  constructor(readonly tool: string) {
    super(ProtocolErrorCode.InvalidParams, `Unknown tool: "${tool}"`);
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
  override readonly kind: ErrorKind = 'not_found';

  constructor(readonly tool: string) {
    super(`Access denied: the tool "${tool}" is outside the caller's rights (answered as an unknown tool)`);
    this.name = 'HiddenToolError';
  }
}

export function unknownPrompt(name: string): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidParams, `Unknown prompt: "${name}"`);
}

/**
 * A resource that does not exist for the caller: -32602 with the URI in `data`, as the MCP
 * specification asks from 2026-07-28 on (SDK 2 sends every -32002 as -32602 on both eras, so a
 * 2025 client reads the same).
 */
export function resourceNotFound(uri: string): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidParams, `Resource not found: ${uri}`, { uri });
}

/**
 * The answer to a request still in flight when its session closes (a DELETE, the credential
 * ending, the gateway stopping): -32000, the code SDK 1.x clients know for a closed connection.
 */
export function sessionClosed(): WireMcpError {
  return new WireMcpError(CONNECTION_CLOSED, 'Session closed: the request was cancelled');
}

/**
 * A retry whose `requestState` names no call this caller paused: tampered with, minted for
 * another principal or request, expired, or used already. The SDK's own wording and data for
 * a state its verifier refuses, so a client reads one answer whichever side refused it.
 */
export function invalidRequestState(): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidParams, 'Invalid or expired requestState', { reason: 'invalid_request_state' });
}

/** A retry that does not answer every input request it was sent (2026-07-28 asks for each key). */
export function missingInputResponses(keys: readonly string[]): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidParams, `inputResponses has no answer for ${keys.map((k) => `"${k}"`).join(', ')}`, { missing: [...keys] });
}

/** What an upstream is told when its request cannot wait for the client: the gateway holds as many paused calls as it may. */
export function tooManyPausedCalls(): WireMcpError {
  return new WireMcpError(LIMIT_ERROR, 'too many calls are waiting for their client; try again later');
}

/** What an upstream is told when its caller already has as many calls waiting for it as one caller may. */
export function tooManyPausedCallsOfCaller(): WireMcpError {
  return new WireMcpError(LIMIT_ERROR, 'too many calls of this client are waiting for its answers; answer those first');
}

/** What an upstream is told when the client it asked through the gateway gave no answer. */
export function unansweredRequest(method: string, why: string): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InternalError, `${method} got no answer: ${why}`);
}

/** One problem a schema found, as Standard Schema validators (zod among them) report it. */
export interface SchemaIssue {
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
  readonly message: string;
}

/**
 * -32602 for a request whose params do not fit the method's schema, naming each problem by
 * its path (the SDK would answer with its validator's raw output).
 */
export function invalidParams(method: string, issues: readonly SchemaIssue[]): WireMcpError {
  const problems = issues.map((i) => `${(i.path ?? []).map((p) => String(typeof p === 'object' ? p.key : p)).join('.') || 'request'}: ${i.message}`).join('; ');
  return new WireMcpError(ProtocolErrorCode.InvalidParams, `Invalid params for ${method}: ${problems}`);
}

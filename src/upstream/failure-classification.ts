import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError, SseError, UnauthorizedError } from '@modelcontextprotocol/client';
import { REDACTED } from '../observability/redact.js';
import { UpstreamAuthError } from './auth/upstream-auth.js';
import { NoCommonVersionError, NotJsonRpcError, UpstreamConnectError } from './errors.js';

/**
 * What a failed connection attempt means: `misconfigured` when no retry can fix it (a missing
 * command, refused credentials, a credential that cannot be read, a client the authorization
 * server refuses, a user who must authorise first, no protocol version in common) and the
 * server waits for a config change or an admin restart; `retryable` otherwise (an authorization
 * server that failed may answer later).
 */
export function classifyConnectFailure(failure: unknown): 'misconfigured' | 'retryable' {
  // Worded for a person, it is still the failure it wraps.
  const error = failure instanceof UpstreamConnectError ? failure.cause : failure;
  const auth = authFailureIn(error);
  if (auth) return auth.kind === 'failed' ? 'retryable' : 'misconfigured';
  if (error instanceof UnauthorizedError) return 'misconfigured';
  if (error instanceof SseError && (error.code === 401 || error.code === 403)) return 'misconfigured';
  if (error instanceof NoCommonVersionError) return 'misconfigured';
  if (error instanceof SdkHttpError) return error.data.status === 401 || error.data.status === 403 ? 'misconfigured' : 'retryable';
  if (error instanceof SdkError && (error.code === SdkErrorCode.ClientHttpAuthentication || error.code === SdkErrorCode.ClientHttpForbidden)) return 'misconfigured';
  if (error instanceof Error && /^cannot start ".*": (command not found|permission denied)$/.test(error.message)) return 'misconfigured';
  return 'retryable';
}

/**
 * What a failed request says about the upstream, and so what the circuit breaker hears:
 * - `cancelled`: the caller gave up; nothing learnt.
 * - `answer`: a JSON-RPC error is an answer, the upstream is alive.
 * - `timeout`: no answer in time; a fault, but the upstream may well be reachable (a slow tool).
 * - `closed`: the connection closed under the request.
 * - `bad-response`: something came back that is not MCP.
 * - `session-ended`: HTTP 404 to a request that named our session (2025): the upstream
 *   restarted and forgot it. Without a session (2026-07-28) a 404 says nothing of the
 *   connection; one carrying the request's JSON-RPC error never gets here (it is the answer).
 * - `refused`: an HTTP client error without a JSON-RPC answer (400, 413, 431, ...): the upstream
 *   is alive and refused this request for what it was (too large, malformed), which says
 *   nothing of the next one. Not 401/403 (the gateway's credentials, every request alike), nor
 *   408/429 (the upstream's own load, a reason to back off).
 * - `unreachable`: any other transport failure (refused, reset).
 */
export type RequestFailure = 'cancelled' | 'answer' | 'timeout' | 'closed' | 'bad-response' | 'session-ended' | 'refused' | 'unreachable';

/** Client errors that speak of the upstream or of the gateway's standing with it, not of one request. */
const NOT_THE_REQUESTS_OWN = new Set([401, 403, 408, 429]);

/** Classifies an error thrown by a request to an upstream (see `RequestFailure`). */
export function classifyRequestFailure(error: unknown, aborted: boolean): RequestFailure {
  if (aborted) return 'cancelled';
  if (error instanceof ProtocolError) return 'answer';
  if (error instanceof NotJsonRpcError) return 'bad-response';
  if (error instanceof SdkHttpError) {
    const status = error.data.status;
    if (status === 404 && typeof error.data.sessionId === 'string') return 'session-ended';
    return typeof status === 'number' && status >= 400 && status < 500 && !NOT_THE_REQUESTS_OWN.has(status) ? 'refused' : 'unreachable';
  }
  if (error instanceof SdkError) {
    switch (error.code) {
      case SdkErrorCode.RequestTimeout:
        return 'timeout';
      case SdkErrorCode.ConnectionClosed:
      case SdkErrorCode.NotConnected:
        return 'closed';
      // The answer came, but not as MCP says it must (a 2026 result without its resultType, say).
      case SdkErrorCode.InvalidResult:
      case SdkErrorCode.UnsupportedResultType:
      case SdkErrorCode.ClientHttpUnexpectedContent:
        return 'bad-response';
      default:
        return 'unreachable';
    }
  }
  return 'unreachable';
}

/** What an upstream's refusal (`refused`) said: its HTTP status and reason phrase. */
export function describeRefusal(error: unknown): string {
  if (!(error instanceof SdkHttpError)) return describeError(error);
  const { status, statusText } = error.data as { status?: number; statusText?: string };
  return `HTTP ${status ?? '?'}${statusText ? ` ${statusText}` : ''}`;
}

/**
 * The reason the gateway could not authenticate, when `error` is it or was caused by it (the
 * SDK wraps what a transport throws during its version probe).
 */
export function authFailureIn(error: unknown): UpstreamAuthError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof UpstreamAuthError) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * How a refused TCP connection is described: nothing reached the upstream, so a replicated
 * server may send the request to another replica (see `replicated-server.ts`).
 */
export const CONNECTION_REFUSED = 'connection refused';

/** A one-line, human explanation of a connection or request failure. */
export function describeError(error: unknown): string {
  if (error instanceof UpstreamConnectError) return error.message;
  const auth = authFailureIn(error);
  if (auth) return auth.message;
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) return 'timed out waiting for initialize';
  // However the SDK words it ("Version negotiation failed: ... (HTTP 401)"), it is the credentials.
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpAuthentication) return 'upstream refused the credentials (401)';
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpForbidden) return 'upstream refused access with these credentials (403)';
  if (error instanceof NotJsonRpcError) return error.message;
  if (error instanceof Error) {
    const told = undiciWords(error);
    if (told) return `${error.message} (${told})`;
    const code = causeCode(error);
    if (code === 'ECONNREFUSED') return CONNECTION_REFUSED;
    if (code) return `${error.message} (${code})`;
    return error.message;
  }
  return String(error);
}

/**
 * undici's codes for failures node:http reports with a system code: an HTTP upstream's requests
 * go through undici, and its failures keep the words they had (and have on every wire).
 */
const UNDICI_CODES: Readonly<Record<string, string>> = {
  // The server closed the connection before its answer ended ("socket hang up" in node:http).
  UND_ERR_SOCKET: 'ECONNRESET',
};

/**
 * The system error code (ECONNREFUSED, ...) anywhere down the error's `cause` chain; an undici
 * error's code as the system code it stands for. undici wraps a connection's own failure
 * (ECONNREFUSED, ENOTFOUND, a certificate error) as the cause of its error, or passes it as is.
 */
function causeCode(error: Error): string | undefined {
  let cause = (error as { cause?: unknown }).cause;
  for (let depth = 0; depth < 5 && cause && typeof cause === 'object'; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') {
      const wrapped = (cause as { cause?: { code?: unknown } }).cause?.code;
      if (code.startsWith('UND_ERR_') && typeof wrapped === 'string') return wrapped;
      return UNDICI_CODES[code] ?? code;
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * undici failures whose code says less than their message: a malformed answer (its parser error
 * has no code: "Response does not match the HTTP/1.1 protocol (Invalid header value char)") and a
 * request it refused to send ("invalid x-key header", a configured value with a line break in
 * it). Their messages name no value, only the header or the fault.
 */
function undiciWords(error: Error): string | undefined {
  let cause = (error as { cause?: unknown }).cause;
  for (let depth = 0; depth < 5 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (cause.name === 'HTTPParserError' || code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') return cause.message;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What is known of the HTTP upstream a connection attempt was made to. */
export interface HttpAttempt {
  url: string;
  wire: 'streamable-http' | 'sse';
  /** Credentials were sent (headers or `auth`): a 401 refused them rather than asked for some. */
  credentials: boolean;
  timeoutMs: number;
}

/** Network failures in words, by system or undici error code. */
const NETWORK_CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: CONNECTION_REFUSED,
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (no answer from DNS)',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'no answer in time',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection reset',
};

/** Certificate failures in words, by OpenSSL or Node error code. */
const CERTIFICATE_CAUSES: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'its certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a self-signed certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate cannot be verified (is an intermediate certificate missing?)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its certificate's issuer is not trusted here (for a private CA, set NODE_EXTRA_CA_CERTS)",
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another host name',
};

/** A code of either table anywhere in a message: legacy SSE reports the network failure in its text alone. */
const CODE_IN_TEXT = new RegExp(`\\b(${[...Object.keys(NETWORK_CAUSES), ...Object.keys(CERTIFICATE_CAUSES)].join('|')})\\b`);

/**
 * A failed connection attempt to an HTTP upstream in words, with the URL it was made to (see
 * `urlForMessage`): "connection refused at http://127.0.0.1:3001/mcp (is the server running?)",
 * "the server answered 404 at ... (is the path right? ...)". A failure to get credentials is
 * left as its own message, which says more than the URL would.
 */
export function describeConnectFailure(error: unknown, attempt: HttpAttempt): string {
  const url = urlForMessage(attempt.url);
  const status = httpStatusOf(error);
  if (status !== undefined) return `${answered(status, attempt)} at ${url}${statusHint(status, attempt)}`;
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) return `no answer within ${formatSeconds(attempt.timeoutMs)} at ${url}`;
  const code = networkCodeIn(error);
  if (code === 'ECONNREFUSED') return `${CONNECTION_REFUSED} at ${url} (is the server running?)`;
  if (code && NETWORK_CAUSES[code]) return `${NETWORK_CAUSES[code]} at ${url}`;
  if (code && CERTIFICATE_CAUSES[code]) return `TLS failed at ${url}: ${CERTIFICATE_CAUSES[code]} (${code})`;
  if (/wrong version number|ERR_SSL_WRONG_VERSION_NUMBER/.test(messagesOf(error))) return `TLS failed at ${url}: the server does not speak TLS (is it http://, not https://?)`;
  return `${describeError(error)} at ${url}`;
}

/**
 * `url` as a message may show it: no user name or password, every query value hidden (an API
 * key often travels there), no fragment. The path stays, as a 404 is about it, but for a segment
 * that looks like a key (long, or with digits among its letters): some services take theirs in
 * the path, and the message reaches every caller of the server.
 */
export function urlForMessage(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(an invalid URL)';
  }
  const query = [...new Set(parsed.searchParams.keys())].map((name) => `${encodeURIComponent(name)}=${REDACTED}`).join('&');
  const path = parsed.pathname
    .split('/')
    .map((segment) => (looksLikeKey(segment) ? REDACTED : segment))
    .join('/');
  return `${parsed.protocol}//${parsed.host}${path}${query ? `?${query}` : ''}`;
}

function looksLikeKey(segment: string): boolean {
  return segment.length >= 24 || (segment.length >= 12 && /\d/.test(segment) && /[a-z]/i.test(segment));
}

function answered(status: number, { credentials }: HttpAttempt): string {
  // The phrases a 401 and a 403 have always had, so that whoever looks for them still finds them.
  if (status === 401) return credentials ? 'upstream refused the credentials (401)' : 'the server answered 401';
  if (status === 403) return credentials ? 'upstream refused access with these credentials (403)' : 'the server answered 403';
  return `the server answered ${status}`;
}

function statusHint(status: number, { wire, credentials }: HttpAttempt): string {
  if (status === 404) return wire === 'sse' ? ' (is the path right? legacy SSE endpoints are usually /sse)' : ' (is the path right? MCP endpoints are usually /mcp)';
  if (status === 401 && !credentials) return ': it wants credentials (give the server `auth` or `headers`)';
  if (status === 405) return ' (is it an MCP endpoint?)';
  return '';
}

/** The HTTP status an upstream refused the attempt with, however the SDK carried it. */
function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof SdkHttpError && typeof error.data.status === 'number') return error.data.status;
  if (error instanceof SseError && typeof error.code === 'number') return error.code;
  if (error instanceof UnauthorizedError) return 401;
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpAuthentication) return 401;
  if (error instanceof SdkError && error.code === SdkErrorCode.ClientHttpForbidden) return 403;
  return undefined;
}

/** A code `NETWORK_CAUSES` or `CERTIFICATE_CAUSES` knows, from the cause chain or else the messages. */
function networkCodeIn(error: unknown): string | undefined {
  const code = error instanceof Error ? causeCode(error) : undefined;
  if (code && (NETWORK_CAUSES[code] || CERTIFICATE_CAUSES[code])) return code;
  return CODE_IN_TEXT.exec(messagesOf(error))?.[1] ?? code;
}

function messagesOf(error: unknown): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    messages.push(current.message, String((current as { code?: unknown }).code ?? ''));
    current = current.cause;
  }
  return messages.join('\n');
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

import { ProtocolError, ProtocolErrorCode, SdkError, SdkErrorCode, type Client, type ServerCapabilities } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { UpstreamAuthError } from './auth/upstream-auth.js';
import type { ChangeStream } from './change-stream.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { FailureNotes } from './connection-status.js';
import { directTransport, sendDirect } from './direct-request.js';
import { NotJsonRpcError, UpstreamBadResponseError, UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js';
import { authFailureIn, classifyRequestFailure, describeError, describeRefusal } from './failure-classification.js';
import { offersMethod } from './offered-methods.js';
import type { OwnerChannel } from './owner-channel.js';
import { incomingResult, outgoingRequest, sdkRequestOptions, type EnvelopeSession, type UpstreamRequestOptions } from './request-envelope.js';
import type { SessionCarryOver } from './session-carry-over.js';

/**
 * Results are relayed to the client unchanged, so they are not re-validated field by field
 * here: the SDK only needs to know the result is an object.
 */
const PassThroughResult = z.object({}).loose();
export type PassThroughResult = z.infer<typeof PassThroughResult>;

/** The live upstream session a request goes out on. */
export interface LiveSession extends EnvelopeSession {
  client: Client;
  /** The protocol version it speaks. */
  protocolVersion: string | undefined;
  capabilities: ServerCapabilities | undefined;
  /** The server's own request timeout, for a caller that gives none. */
  timeoutMs: number;
  /** The upstream no longer knows this session (it restarted): the connection starts a new one. */
  ended: () => void;
}

/** What a connection's requests share, from one session to the next. */
export interface ForwardingParts {
  server: string;
  breaker: CircuitBreaker;
  owners: OwnerChannel;
  garbled: GarbledOutput;
  failure: FailureNotes;
  redact: (text: string) => string;
  /** A 2026-07-28 upstream's subscriptions are its change stream's filter. */
  changes: ChangeStream;
  /** A 2025 upstream's answered subscriptions are kept for its next session. */
  carryOver: SessionCarryOver;
}

/**
 * Sends one upstream's requests past its circuit breaker, each with its timeout and its owner
 * (`OwnerChannel`), and tells the breaker what each end says of the upstream.
 */
export class RequestForwarder {
  constructor(private readonly parts: ForwardingParts) {}

  /**
   * Sends `method` on `session`; the result comes back unvalidated, a failure as `failedRequest`
   * makes it. A method a 2026-07-28 session does not offer is refused here.
   */
  async forward(session: LiveSession, method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<PassThroughResult> {
    const { server, breaker, garbled } = this.parts;
    if (session.modern && session.capabilities && !offersMethod(session.capabilities, method)) {
      // A 2026-07-28 server serves what it declares, and would refuse the rest itself (with an
      // HTTP 404 for an unknown method). A 2025 one may serve more than it declares
      // (`completion/complete` predates the `completions` capability), so it is asked.
      throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `"${server}" does not offer ${method}`);
    }
    const timeout = options.timeout ?? session.timeoutMs;
    const garbledMark = garbled.mark();
    // Before the breaker: a value too long for a header is refused without taking a probe's place.
    const outgoing = outgoingRequest(method, params, options, session);
    if (!breaker.allow()) {
      throw new UpstreamUnavailableError(server, `circuit breaker open after repeated failures; next try in ${breaker.retryAfterSeconds}s`);
    }
    if (session.modern && (method === 'resources/subscribe' || method === 'resources/unsubscribe')) {
      // The stream's own reopening tells nothing of the upstream's health: whatever `allow()` took (a probe) is given back.
      try {
        return await this.parts.changes.change(method, params?.uri, session.capabilities);
      } finally {
        breaker.release();
      }
    }
    const { client } = session;
    try {
      // A plain call on a 2025 HTTP session goes past the SDK client's request machinery (`direct-request.ts`).
      const direct = method === 'tools/call' && !options.onprogress ? directTransport(client, session.modern) : undefined;
      const send = () => client.request({ method, ...(outgoing.params ? { params: outgoing.params } : {}) }, PassThroughResult, sdkRequestOptions(options, timeout, outgoing.headers));
      const result = direct
        ? await sendDirect(client, direct, method, outgoing.params, { signal: options.signal, timeout, headers: outgoing.headers, owner })
        : await this.parts.owners.offer(owner, send);
      breaker.success();
      if (!session.modern) this.parts.carryOver.answered(method, params?.uri);
      return incomingResult(method, result, session);
    } catch (error) {
      const { failure, redact } = this.parts;
      const failed = failedRequest(error, {
        server,
        method,
        signal: options.signal,
        timeoutMs: timeout,
        protocolVersion: session.protocolVersion,
        garbled: garbled.since(garbledMark),
        lastError: failure.lastError,
        redact,
        redactedAuth: (authFailure) => failure.redactedAuth(authFailure),
      });
      tellBreaker(breaker, failed.breaker);
      if (failed.sessionEnded) session.ended();
      throw failed.error;
    }
  }
}

/** What the circuit breaker hears of a failed request (see `CircuitBreaker`); `nothing` when it was never sent. */
export type BreakerNews = 'success' | 'release' | 'fault' | 'unreachable' | 'nothing';

/** A failed request, as its caller and the connection take it. */
export interface FailedRequest {
  /** What the caller gets thrown. */
  error: unknown;
  breaker: BreakerNews;
  /** The upstream no longer knows our session (it restarted): the connection starts a new one. */
  sessionEnded: boolean;
}

export interface FailureContext {
  server: string;
  method: string;
  /** The caller's signal: aborted, the caller gets back the reason it gave. */
  signal: AbortSignal | undefined;
  timeoutMs: number;
  /** The protocol version the upstream speaks, when known. */
  protocolVersion: string | undefined;
  /**
   * Output that was not JSON-RPC while the request waited (`GarbledOutput.since`): most likely
   * its answer, but nothing ties it to this request (another caller's call may have caused it),
   * so the caller is told what it was, and the operator's log has what it said.
   */
  garbled: NotJsonRpcError | undefined;
  /** Why the connection last failed, already redacted. */
  lastError: string | undefined;
  redact: (text: string) => string;
  redactedAuth: (error: UpstreamAuthError) => UpstreamAuthError;
}

/**
 * What an error thrown by a request to an upstream becomes. Upstream JSON-RPC errors are
 * rethrown as they came; timeouts and lost connections become typed upstream errors, so
 * "backend unavailable" is never told as the caller's bad request. Only the upstream's own
 * faults count against it in the breaker.
 */
export function failedRequest(error: unknown, context: FailureContext): FailedRequest {
  const { server, method, timeoutMs, garbled } = context;
  const failed = (breaker: BreakerNews, thrown: unknown, sessionEnded = false): FailedRequest => ({ error: thrown, breaker, sessionEnded });
  const authFailure = authFailureIn(error);
  if (authFailure) {
    // The gateway could not authenticate this request: no fault of the upstream's, unless
    // its authorization server failed; the caller reads why (and a URL, when a user must act).
    return failed(authFailure.kind === 'failed' ? 'unreachable' : 'release', context.redactedAuth(authFailure));
  }
  if (isEraMismatch(error)) {
    // Nothing was sent: the method does not exist in the protocol revision this upstream speaks.
    return failed('nothing', new ProtocolError(ProtocolErrorCode.MethodNotFound, `${method} is not available on "${server}" (it speaks MCP ${context.protocolVersion ?? 'of another revision'})`));
  }
  const lastError = context.lastError ?? 'connection closed';
  switch (classifyRequestFailure(error, context.signal?.aborted === true)) {
    case 'cancelled':
      // The SDK wraps the caller's reason; the caller gets back the one it gave.
      return failed('release', context.signal?.reason ?? error);
    case 'answer':
      return failed('success', error);
    case 'refused':
      // The upstream is alive and refused this request alone (too large, malformed): the
      // caller's failure, told as the caller's bad request, not a fault of the upstream.
      return failed('success', new ProtocolError(ProtocolErrorCode.InvalidRequest, `upstream "${server}" refused ${method}: ${describeRefusal(error)}`));
    case 'timeout':
      if (garbled) return failed('fault', new UpstreamBadResponseError(server, method, `${garbled.summary} (and no answer within ${timeoutMs / 1000}s)`));
      return failed('fault', new UpstreamTimeoutError(server, method, timeoutMs));
    case 'closed':
      if (garbled) return failed('unreachable', new UpstreamBadResponseError(server, method, `${garbled.summary} (then: ${lastError})`));
      return failed('unreachable', new UpstreamConnectionLostError(server, method, lastError));
    case 'bad-response':
      return failed('fault', new UpstreamBadResponseError(server, method, context.redact(describeError(error))));
    case 'session-ended':
      return failed('unreachable', new UpstreamConnectionLostError(server, method, context.redact(describeError(error))), true);
    case 'unreachable':
      return failed('unreachable', new UpstreamConnectionLostError(server, method, context.redact(describeError(error))));
  }
}

/** Tells `breaker` what a request's end says of the upstream. */
function tellBreaker(breaker: CircuitBreaker, news: BreakerNews): void {
  if (news === 'success') breaker.success();
  else if (news === 'release') breaker.release();
  else if (news !== 'nothing') breaker.failure(news);
}

/**
 * The last output of an upstream that was not JSON-RPC, and how many there were: a request
 * can tell whether some came while it waited.
 */
export class GarbledOutput {
  #last: NotJsonRpcError | undefined;
  #count = 0;

  constructor(
    private readonly logger: Logger,
    private readonly redact: (text: string) => string,
  ) {}

  /** The client's error handler: output that was not JSON-RPC is kept and logged redacted, other transport errors logged. */
  noteError(error: Error): void {
    if (error instanceof NotJsonRpcError) {
      this.#last = error;
      this.#count++;
      this.logger.debug({ source: error.source, sample: this.redact(error.sample) }, 'upstream sent something that is not JSON-RPC');
    } else {
      this.logger.debug({ err: error.message }, 'upstream transport error');
    }
  }

  /** A mark for `since`, taken when a request is sent. */
  mark(): number {
    return this.#count;
  }

  /** The output that was not JSON-RPC since `mark`, if any came. */
  since(mark: number): NotJsonRpcError | undefined {
    return this.#count !== mark ? this.#last : undefined;
  }
}

/** Sending a method the negotiated protocol revision does not have (the SDK refuses before sending). */
function isEraMismatch(error: unknown): boolean {
  return error instanceof SdkError && error.code === SdkErrorCode.MethodNotSupportedByProtocolVersion;
}

import { StringDecoder } from 'node:string_decoder';
import { SdkError, SdkErrorCode, type JSONRPCMessage, type JSONRPCRequest, type JSONRPCResponse, type Transport, type TransportSendOptions } from '@modelcontextprotocol/client';
import { createParser } from 'eventsource-parser';
import type { UpstreamAuth } from './auth/upstream-auth.js';
import { NotJsonRpcError } from './errors.js';
import { authFailureIn, describeError } from './failure-classification.js';
import {
  answers,
  asJsonRpcMessage,
  authChallenge,
  cancelledRequestId,
  errorAnswering,
  httpError,
  isEventStream,
  isResponse,
  jsonRpcMessages,
  tooLarge,
  UnansweredRequestError,
  type RequestId,
} from './http-responses.js';
import type { OwnerChannel } from './owner-channel.js';
import { pause, RequestAbort } from './request-abort.js';
import { standardHeaders } from './standard-headers.js';
import { UpstreamHttpPool } from './upstream-http-pool.js';
import type { EventStreamResponse, UpstreamResponse } from './upstream-response.js';

export interface HttpClientTransportOptions {
  headers: Readonly<Record<string, string>>;
  /**
   * The owner offered when a request is sent is set again while the messages of that request's
   * response stream are delivered, so whoever handles them can tell whose they are.
   */
  owners?: OwnerChannel | undefined;
  /**
   * Largest message accepted from the upstream: a JSON response body, or one event of an SSE
   * stream (counted in characters there, never more than its bytes). A larger one fails its
   * request, or ends the GET stream it came on, without being buffered whole.
   */
  maxResponseBytes?: number;
  /** Credentials added to every request (POST, the GET stream, DELETE), and asked to recover from a refusal. */
  auth?: UpstreamAuth | undefined;
  /** How long opening a connection (DNS, TCP, TLS) may take: the server's connect timeout. */
  connectTimeoutMs?: number | undefined;
}

const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** The GET stream is reopened after this long when it ends or fails to open... */
const STREAM_RETRY_MS = 1000;
/** ...doubling with each failure to open in a row, up to this. */
const MAX_STREAM_RETRY_MS = 60_000;
/** Attempts to resume a request's response stream (GET with `Last-Event-ID`) before its request fails. */
const MAX_RESUME_ATTEMPTS = 3;

/** Headers the transport derives from its own state or from the message; a caller's per-request headers never replace them. */
const RESERVED_HEADERS = new Set(['authorization', 'content-type', 'content-length', 'accept', 'last-event-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'mcp-session-id']);

/** Where the answer to a request sent with `sendRequest` goes, instead of the SDK client. */
export interface AnswerWaiter {
  answered(answer: JSONRPCResponse): void;
  /** The transport closed before the answer came (as the SDK client fails its requests then). */
  closed(error: Error): void;
}

/** What reading one SSE response stream came to. */
interface StreamRead {
  /** The answer to the request it was read for was among its events. */
  answered: boolean;
  /** The id of the last event that carried one: where the stream resumes. */
  lastEventId?: string;
  /** How long the server asked to wait before reconnecting (the SSE `retry` field). */
  retryMs?: number;
  /** An event passed the size limit: the stream was closed there. */
  tooLarge?: Error;
  /** The stream failed rather than ended. */
  broken?: Error;
}

/**
 * Client side of Streamable HTTP on an undici pool of keep-alive connections (Nagle off), in
 * place of the SDK's `fetch`-based transport, which costs the gateway about a tenth of its CPU
 * per call (Request/Headers/AbortSignal objects and a web stream per response). It speaks the
 * same wire: POST with JSON or SSE answers, the session header, the protocol-version header,
 * a GET stream for server-initiated messages, and DELETE to end the session; and for
 * 2026-07-28 the standard headers taken from each request's envelope. With `auth`, every
 * request carries its credentials, and a request refused for them (401, or 403
 * `insufficient_scope`) is sent once more when the auth says it has new ones.
 *
 * Each request owns its POST and response stream: they are closed when the SDK gives the
 * request up (on 2026-07-28 by aborting its signal; on 2025 by sending `notifications/cancelled`,
 * which reaches the server first) and when the transport closes. A response stream that ends
 * without the answer is resumed with `Last-Event-ID` when the server gave event ids
 * (2025-11-25 resumability); otherwise, or when resuming fails, the request fails at once
 * (`UnansweredRequestError`) instead of at its timeout.
 */
export class HttpClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  sessionId?: string;
  /** One POST per request: on a 2026-07-28 connection the SDK cancels by aborting it. */
  readonly hasPerRequestStream = true;

  readonly #options: HttpClientTransportOptions;
  /** The configured headers, their names lower-cased once rather than on every request. */
  readonly #headers: Readonly<Record<string, string>>;
  /** The upstream's connections: closed with the transport, none outlives it. */
  readonly #pool: UpstreamHttpPool;
  /** What gives up each request whose POST or response stream is open, by request id. */
  readonly #calls = new Map<string, RequestAbort>();
  /** Who waits for the answer to each request sent with `sendRequest`, by request id. */
  readonly #waiters = new Map<number, AnswerWaiter>();
  #protocolVersion: string | undefined;
  #streamRetry: NodeJS.Timeout | undefined;
  /** Failures to open the GET stream in a row (its retry backs off). */
  #streamFailures = 0;
  /** The last event id seen on the GET stream: it is reopened from there. */
  #streamEventId: string | undefined;
  /**
   * The GET stream could not get credentials (the authorization server refuses or is down): it
   * is not reopened until a request succeeds, or it would ask for a token every few seconds for
   * as long as the connection lives.
   */
  #streamParked = false;
  #closed = false;

  constructor(url: URL, options: HttpClientTransportOptions) {
    this.#options = options;
    this.#headers = connectionFree(options.headers);
    this.#pool = new UpstreamHttpPool(url, { connectTimeoutMs: options.connectTimeoutMs });
  }

  async start(): Promise<void> {}

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  /**
   * Sends `message`. For a request, the promise settles when its response has been read: it
   * rejects when no answer came (the SDK fails the request with that error, see
   * `owner-channel.ts`), and resolves once the answer was delivered or the request given up.
   */
  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const owner = this.#options.owners?.take();
    if (this.#closed) throw new Error('transport closed');
    if (!isRequest(message)) {
      const call = options?.requestSignal ? this.#track(undefined, options.requestSignal) : undefined;
      try {
        return await this.#post(message, options, owner, call?.abort);
      } finally {
        call?.done();
        // The server has heard of the cancellation (or could not be told): the request's stream closes.
        const cancelled = cancelledRequestId(message);
        if (cancelled !== undefined) this.#calls.get(String(cancelled))?.abort(new Error('request cancelled'));
      }
    }
    const call = this.#track(message.id, options?.requestSignal);
    try {
      await this.#post(message, options, owner, call.abort);
    } finally {
      call.done();
    }
  }

  /**
   * Sends request `message` (numbered from the SDK client's own sequence) for `owner`, its
   * answer handed to `waiter` instead of `onmessage`, one microtask after it is read as
   * `onmessage` gets an answer (see `answersAfterNotifications` in open-transport.ts): a request
   * sent past the SDK client (`direct-request.ts`). The promise settles as `send`'s does.
   *
   * `waiter` waits as long as the SDK client's handler of a request would: past the end of the
   * POST, which an upstream may answer with a 202 and send the answer on its GET stream, until
   * the answer comes, the transport closes, or the caller gives up (`forget`). A failed POST
   * ends its wait too: its caller hears that failure instead.
   */
  async sendRequest(message: JSONRPCRequest & { id: number }, waiter: AnswerWaiter, owner: unknown, headers?: Record<string, string>): Promise<void> {
    if (this.#closed) throw new Error('transport closed');
    this.#waiters.set(message.id, waiter);
    const call = this.#track(message.id, undefined);
    try {
      await this.#post(message, headers ? { headers } : undefined, owner, call.abort);
    } catch (error) {
      this.forget(message.id, waiter);
      throw error;
    } finally {
      call.done();
    }
  }

  /**
   * `waiter` no longer waits for the answer to request `id` (sent with `sendRequest`; its caller
   * gave up, or has its outcome): one that still comes goes to `onmessage`, as an answer the SDK
   * client no longer waits for does.
   */
  forget(id: number, waiter: AnswerWaiter): void {
    if (this.#waiters.get(id) === waiter) this.#waiters.delete(id);
  }

  /** Ends the upstream session (DELETE), as the SDK's transport does. */
  async terminateSession(): Promise<void> {
    if (!this.sessionId) return;
    const response = await this.#authorizedRequest('DELETE', {});
    response.resume();
    this.sessionId = undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#streamRetry);
    for (const call of this.#calls.values()) call.abort(new Error('transport closed'));
    this.#calls.clear();
    // Ends every request and response stream still open, and every connection.
    const closed = this.#pool.close();
    this.onclose?.();
    // After the SDK client heard of it, as it fails its own requests then, and with its error.
    const waiters = [...this.#waiters.values()];
    this.#waiters.clear();
    const error = new SdkError(SdkErrorCode.ConnectionClosed, 'Connection closed');
    for (const waiter of waiters) waiter.closed(error);
    await closed;
  }

  /**
   * What gives up request `id`'s POST and response stream (see the class comment for what does),
   * following the SDK's `requestSignal` when it gives one; without an id, a message's own.
   */
  #track(id: RequestId | undefined, requestSignal: AbortSignal | undefined): { abort: RequestAbort; done(): void } {
    const key = id === undefined ? undefined : String(id);
    const abort = new RequestAbort();
    const forward = () => abort.abort(requestSignal?.reason);
    if (requestSignal?.aborted) forward();
    else requestSignal?.addEventListener('abort', forward, { once: true });
    if (key !== undefined) this.#calls.set(key, abort);
    return {
      abort,
      done: () => {
        requestSignal?.removeEventListener('abort', forward);
        if (key !== undefined && this.#calls.get(key) === abort) this.#calls.delete(key);
      },
    };
  }

  async #post(message: JSONRPCMessage, options: TransportSendOptions | undefined, owner: unknown, signal: RequestAbort | undefined): Promise<void> {
    const body = JSON.stringify(message);
    const headers: Record<string, string> = { ...extraHeaders(options?.headers), 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    Object.assign(headers, standardHeaders(message));
    const session = this.sessionId;
    let response: UpstreamResponse;
    try {
      response = await this.#authorizedRequest('POST', headers, body, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      throw error;
    }
    const sessionId = response.headers['mcp-session-id'];
    if (typeof sessionId === 'string') this.sessionId = sessionId;
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300 && this.#streamParked) {
      // Credentials work again: the GET stream parked for want of them opens now.
      this.#streamParked = false;
      this.#openStream();
    }
    if (status === 202) {
      response.resume();
      if ('method' in message && message.method === 'notifications/initialized') this.#openStream();
      return;
    }
    if (status < 200 || status >= 300) {
      const text = await response.text(64 * 1024).catch(() => '');
      // A client error carrying the JSON-RPC error that answers this request is that answer: a
      // 2026-07-28 server answers an unknown method with 404, a header mismatch with 400. Not a
      // 404 to a request that named our session (the server forgot it: the connection is over),
      // nor an auth wall (no retry can help; the connection reads it as misconfiguration).
      const sessionEnded = status === 404 && session !== undefined;
      const inBand = status >= 400 && status < 500 && status !== 401 && status !== 403 && !sessionEnded;
      if (inBand && this.#deliverRefusal(text, message, owner)) return;
      throw httpError(status, response.statusMessage, text, session);
    }
    const request = isRequest(message) ? message : undefined;
    if (isEventStream(response)) {
      // The answer streams; notifications and requests about it may come first.
      if (!request || !signal) return void this.#consumeEvents(response, owner, signal);
      const failure = await this.#awaitAnswer(response, owner, signal, request.id);
      if (!failure || signal.aborted || this.#closed) return;
      // A stream that ends is how some requests finish (a 2026-07-28 `subscriptions/listen`): its sender says so.
      if (failure instanceof UnansweredRequestError && options?.onRequestStreamEnd) return options.onRequestStreamEnd();
      throw failure;
    }
    const type = String(response.headers['content-type'] ?? '');
    const text = await response.text(this.#maxMessageBytes);
    if (text.trim() === '') {
      if (request) throw new UnansweredRequestError(`the response (HTTP ${status}) was empty`);
      return;
    }
    const items = jsonRpcMessages(text);
    // An answer the SDK cannot match to its request would leave the caller waiting for its
    // timeout; failing the send tells it at once what came back instead.
    if (!items) throw new NotJsonRpcError(`HTTP ${status} (${type || 'no content-type'})`, text);
    for (let i = 0; i < items.length; i++) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve)); // see #consumeEvents
      this.#dispatch(items[i]!, owner);
    }
    if (request && !items.some((item) => answers(item, request.id))) throw new UnansweredRequestError(`the response (HTTP ${status}) carried no answer to the request`);
  }

  get #maxMessageBytes(): number {
    return this.#options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /**
   * `#request` with the auth's credentials; a refusal of them is shown to the auth, and the
   * request sent a second time if it has new ones. A second refusal is the answer.
   */
  async #authorizedRequest(method: string, headers: Record<string, string>, body?: string, signal?: RequestAbort): Promise<UpstreamResponse> {
    const auth = this.#options.auth;
    if (!auth) return this.#request(method, headers, body, signal);
    for (let attempt = 1; ; attempt++) {
      const credentials = await auth.credentials();
      const response = await this.#request(method, { ...headers, ...credentials.headers }, body, signal, credentials.query);
      const challenge = attempt === 1 ? authChallenge(response) : undefined;
      if (!challenge) return response;
      let retry: boolean;
      try {
        retry = await auth.onRejected(challenge);
      } catch (error) {
        response.resume();
        throw error;
      }
      if (!retry) return response;
      response.resume();
    }
  }

  #request(method: string, headers: Record<string, string>, body?: string, signal?: RequestAbort, query?: Record<string, string>): Promise<UpstreamResponse> {
    return this.#pool.request(method, query, this.#requestHeaders(headers, body), body, signal);
  }

  /**
   * The configured headers, then the session's, then the request's own, one spelling per name
   * (a configured `Authorization` and the auth's `authorization` would otherwise both be sent).
   */
  #requestHeaders(headers: Record<string, string>, body: string | undefined): Record<string, string> {
    const all: Record<string, string> = { ...this.#headers };
    // Credentials in the URL's user info go as Basic auth unless an Authorization header is configured (as node:http sent them).
    if (this.#pool.basicAuth && all.authorization === undefined) all.authorization = this.#pool.basicAuth;
    if (this.sessionId) all['mcp-session-id'] = this.sessionId;
    if (this.#protocolVersion) all['mcp-protocol-version'] = this.#protocolVersion;
    for (const name in headers) all[name.toLowerCase()] = headers[name]!;
    if (body !== undefined) all['content-length'] = String(Buffer.byteLength(body));
    return all;
  }

  /** Delivers a JSON-RPC error body that answers `message` in-band; false when it is anything else. */
  #deliverRefusal(text: string, message: JSONRPCMessage, owner: unknown): boolean {
    const answer = errorAnswering(text, message);
    if (answer) this.#dispatch(answer, owner);
    return answer !== undefined;
  }

  /**
   * Reads a request's SSE response up to its answer. A stream that ends or breaks off before it,
   * after an event with an id, is asked for again from there (a 2025-11-25 server may close it on
   * purpose and have the client poll); without an id, or when resuming fails, the answer is not
   * coming and the reason is returned. Undefined once answered or given up.
   */
  async #awaitAnswer(stream: EventStreamResponse, owner: unknown, signal: RequestAbort, id: RequestId): Promise<Error | undefined> {
    let lastEventId: string | undefined;
    for (;;) {
      const read = await this.#consumeEvents(stream, owner, signal, id);
      if (read.answered || signal.aborted || this.#closed) return undefined;
      if (read.tooLarge) return read.tooLarge;
      lastEventId = read.lastEventId ?? lastEventId;
      const ended = read.broken ? `broke off (${describeError(read.broken)})` : 'ended';
      if (lastEventId === undefined) return new UnansweredRequestError(`the response stream ${ended} without an answer`);
      const resumed = await this.#resume(lastEventId, read.retryMs, signal);
      if (resumed === undefined) return undefined;
      if (resumed instanceof Error) return new UnansweredRequestError(`the response stream ${ended} without an answer, and resuming it failed: ${describeError(resumed)}`);
      stream = resumed;
    }
  }

  /**
   * The stream after event `lastEventId` (GET with `Last-Event-ID`), after the server's `retry`
   * or a backoff; asked for up to `MAX_RESUME_ATTEMPTS` times while it fails to open, once when
   * refused (no GET stream, an unknown event, a forgotten session: asking again changes nothing).
   * Undefined once the request is given up.
   */
  async #resume(lastEventId: string, retryMs: number | undefined, signal: RequestAbort): Promise<EventStreamResponse | Error | undefined> {
    for (let attempt = 1; ; attempt++) {
      await pause(retryMs ?? retryDelay(attempt), signal);
      if (signal.aborted || this.#closed) return undefined;
      let failure: Error;
      try {
        const response = await this.#authorizedRequest('GET', { accept: 'text/event-stream', 'last-event-id': lastEventId }, undefined, signal);
        if (isEventStream(response)) return response;
        response.resume();
        const status = response.statusCode ?? 0;
        failure = new Error(`HTTP ${status}`);
        if (status >= 400 && status < 500) return failure;
      } catch (error) {
        if (signal.aborted || this.#closed) return undefined;
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (attempt >= MAX_RESUME_ATTEMPTS) return failure;
    }
  }

  /**
   * The GET stream for messages the server sends on its own; reopened while the transport lives
   * (from its last event id, if it gave any), backing off while it fails, and parked while its
   * credentials cannot be had.
   */
  #openStream(): void {
    if (this.#closed) return;
    const resumeFrom = this.#streamEventId;
    this.#authorizedRequest('GET', { accept: 'text/event-stream', ...(resumeFrom !== undefined ? { 'last-event-id': resumeFrom } : {}) }).then(
      (response) => {
        const status = response.statusCode ?? 0;
        if (status === 401 || status === 403) {
          response.resume(); // refused for its credentials, which the auth could not renew
          this.#streamParked = true;
          return;
        }
        if (!isEventStream(response)) {
          response.resume();
          if (resumeFrom === undefined) return; // the server offers no such stream
          // It cannot resume from there (it forgot the event, or restarted): a fresh stream next.
          this.#streamEventId = undefined;
          this.#streamFailures++;
          this.#retryStream();
          return;
        }
        this.#streamFailures = 0;
        void this.#consumeEvents(response, undefined, undefined).then((read) => {
          this.#streamEventId = read.lastEventId ?? this.#streamEventId;
          const failure = read.tooLarge ?? read.broken;
          if (failure && !this.#closed) this.onerror?.(failure);
          if (read.tooLarge) {
            // Resumed, the stream would replay the event that was too large: a fresh one, after a pause.
            this.#streamEventId = undefined;
            this.#streamFailures++;
          }
          this.#retryStream(read.tooLarge ? undefined : read.retryMs);
        });
      },
      (error: unknown) => {
        if (authFailureIn(error)) {
          this.#streamParked = true;
          return;
        }
        this.#streamFailures++;
        this.#retryStream();
      },
    );
  }

  #retryStream(delay = retryDelay(this.#streamFailures)): void {
    if (this.#closed) return;
    this.#streamRetry = setTimeout(() => this.#openStream(), delay);
    this.#streamRetry.unref();
  }

  /**
   * Reads an SSE response to its end, delivering its messages, and says what it came to. With
   * `id`, whether the answer to that request was among them. An event larger than the message
   * limit ends the read there, the stream closed.
   */
  async #consumeEvents(response: EventStreamResponse, owner: unknown, signal: RequestAbort | undefined, id?: RequestId): Promise<StreamRead> {
    const limit = this.#maxMessageBytes;
    const read: StreamRead = { answered: false };
    const events: string[] = [];
    const parser = createParser({
      // Counts what is buffered of the event being read (its data, and an unfinished line).
      maxBufferSize: limit,
      onEvent: (event) => {
        if (event.id !== undefined) read.lastEventId = event.id;
        if ((event.event === undefined || event.event === 'message') && event.data.trim() !== '') events.push(event.data);
      },
      onRetry: (ms) => (read.retryMs = ms),
      onError: (error) => {
        if (error.type === 'max-buffer-size-exceeded') read.tooLarge = tooLarge('an SSE event', limit);
      },
    });
    // The body comes as bytes: a character split across chunks is joined here.
    const decoder = new StringDecoder('utf8');
    try {
      for await (const chunk of response.stream) {
        parser.feed(decoder.write(chunk as Buffer));
        const batch = events.splice(0);
        for (let i = 0; i < batch.length; i++) {
          // The SDK handles a notification a microtask after receiving it but a response at
          // once; a notification and the answer arriving in one chunk (the last progress
          // report and the result, say) would otherwise swap places and the notification be lost.
          if (i > 0) await new Promise((resolve) => setImmediate(resolve));
          try {
            const message = this.#deliver(JSON.parse(batch[i]!), owner);
            if (message && id !== undefined && answers(message, id)) read.answered = true;
          } catch (error) {
            this.onerror?.(new Error(`upstream sent an SSE event that is not JSON: ${(error as Error).message}`));
          }
        }
        if (read.tooLarge) break; // leaving the loop destroys the response: nothing more is buffered
      }
    } catch (error) {
      if (!this.#closed && !signal?.aborted) read.broken = error instanceof Error ? error : new Error(String(error));
    }
    return read;
  }

  #deliver(value: unknown, owner: unknown): JSONRPCMessage | undefined {
    const message = asJsonRpcMessage(value);
    if (message) this.#dispatch(message, owner);
    else this.onerror?.(new NotJsonRpcError('an SSE event', JSON.stringify(value)));
    return message;
  }

  #dispatch(message: JSONRPCMessage, owner: unknown): void {
    if (this.#waiters.size > 0 && isResponse(message)) {
      // The SDK client matches an answer by its id as a number: so is a waiter found.
      const id = Number(message.id);
      const waiter = this.#waiters.get(id);
      if (waiter) {
        this.#waiters.delete(id);
        queueMicrotask(() => waiter.answered(message));
        return;
      }
    }
    if (this.#options.owners) this.#options.owners.delivering = owner;
    this.onmessage?.(message);
  }
}

/**
 * Whether a message the SDK hands over is a request (it has a method and an id). The SDK built
 * it, so its shape is not in question; the schema check this replaces ran twice per request.
 */
function isRequest(message: JSONRPCMessage): message is JSONRPCRequest {
  return 'method' in message && 'id' in message;
}

/**
 * Headers that describe one connection rather than the request: the pool manages its connections
 * itself and refuses a request carrying any of these, so a configured one is left out.
 * (`Connection: close` it honours: the connection is not kept for another request.)
 */
const CONNECTION_HEADERS = new Set(['keep-alive', 'transfer-encoding', 'upgrade', 'expect']);

/** The configured headers with lower-cased names, without those of `CONNECTION_HEADERS`. */
function connectionFree(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!CONNECTION_HEADERS.has(lower)) out[lower] = value;
  }
  return out;
}

/** A caller's per-request headers (`Mcp-Param-*`), without any the transport owns. */
function extraHeaders(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!RESERVED_HEADERS.has(name.toLowerCase())) kept[name.toLowerCase()] = value;
  }
  return kept;
}

/** The wait before reopening a stream after `failures` failures in a row (none: the plain retry). */
function retryDelay(failures: number): number {
  return Math.min(STREAM_RETRY_MS * 2 ** Math.max(0, failures - 1), MAX_STREAM_RETRY_MS);
}

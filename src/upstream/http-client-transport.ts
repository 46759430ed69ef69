import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import {
  isJSONRPCErrorResponse,
  isJSONRPCResultResponse,
  parseJSONRPCMessage,
  SdkErrorCode,
  SdkHttpError,
  type JSONRPCMessage,
  type Transport,
  type TransportSendOptions,
} from '@modelcontextprotocol/client';
import { createParser } from 'eventsource-parser';
import { INSUFFICIENT_SCOPE } from './auth/authorized-fetch.js';
import type { AuthChallenge, UpstreamAuth } from './auth/upstream-auth.js';
import { NotJsonRpcError } from './errors.js';
import { authFailureIn } from './failure-classification.js';
import type { OwnerChannel } from './owner-channel.js';
import { standardHeaders } from './standard-headers.js';

export interface HttpClientTransportOptions {
  headers: Readonly<Record<string, string>>;
  /**
   * The owner offered when a request is sent is set again while the messages of that request's
   * response stream are delivered, so whoever handles them can tell whose they are.
   */
  owners?: OwnerChannel | undefined;
  /** Largest response body accepted from the upstream. */
  maxResponseBytes?: number;
  /** Credentials added to every request (POST, the GET stream, DELETE), and asked to recover from a refusal. */
  auth?: UpstreamAuth | undefined;
}

const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** The GET stream is reopened after this long when it ends or fails to open... */
const STREAM_RETRY_MS = 1000;
/** ...doubling with each failure to open in a row, up to this. */
const MAX_STREAM_RETRY_MS = 60_000;

/** Headers the transport derives from its own state or from the message; a caller's per-request headers never replace them. */
const RESERVED_HEADERS = new Set(['authorization', 'content-type', 'content-length', 'accept', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'mcp-session-id']);

/**
 * Client side of Streamable HTTP on `node:http` with a keep-alive agent and Nagle off, in
 * place of the SDK's `fetch`-based transport, which costs the gateway about a tenth of its CPU
 * per call (Request/Headers/AbortSignal objects and a web stream per response). It speaks the
 * same wire: POST with JSON or SSE answers, the session header, the protocol-version header,
 * a GET stream for server-initiated messages, and DELETE to end the session; and for
 * 2026-07-28 the standard headers taken from each request's envelope, and cancellation by
 * closing the request's own response stream. With `auth`, every request carries its credentials,
 * and a request refused for them (401, or 403 `insufficient_scope`) is sent once more when the
 * auth says it has new ones.
 */
export class HttpClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  sessionId?: string;
  /** One POST per request: on a 2026-07-28 connection the SDK cancels by aborting it. */
  readonly hasPerRequestStream = true;

  readonly #url: URL;
  readonly #options: HttpClientTransportOptions;
  readonly #agent: HttpAgent;
  readonly #send: typeof httpRequest;
  readonly #inFlight = new Set<ClientRequest>();
  #protocolVersion: string | undefined;
  #streamRetry: NodeJS.Timeout | undefined;
  /** Failures to open the GET stream in a row (its retry backs off). */
  #streamFailures = 0;
  /**
   * The GET stream could not get credentials (the authorization server refuses or is down): it
   * is not reopened until a request succeeds, or it would ask for a token every few seconds for
   * as long as the connection lives.
   */
  #streamParked = false;
  #closed = false;

  constructor(url: URL, options: HttpClientTransportOptions) {
    this.#url = url;
    this.#options = options;
    const secure = url.protocol === 'https:';
    this.#agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.#send = (secure ? httpsRequest : httpRequest) as typeof httpRequest;
  }

  async start(): Promise<void> {}

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const owner = this.#options.owners?.take();
    if (this.#closed) throw new Error('transport closed');
    const signal = options?.requestSignal;
    const body = JSON.stringify(message);
    const headers: Record<string, string> = { ...extraHeaders(options?.headers), 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    Object.assign(headers, standardHeaders(message));
    const session = this.sessionId;
    let response: IncomingMessage;
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
      const text = await readAll(response, 64 * 1024).catch(() => '');
      // A client error carrying the JSON-RPC error that answers this request is that answer: a
      // 2026-07-28 server answers an unknown method with 404, a header mismatch with 400. Not a
      // 404 to a request that named our session (the server forgot it: the connection is over),
      // nor an auth wall (no retry can help; the connection reads it as misconfiguration).
      const sessionEnded = status === 404 && session !== undefined;
      const answers = status >= 400 && status < 500 && status !== 401 && status !== 403 && !sessionEnded;
      if (answers && this.#deliverRefusal(text, message, owner)) return;
      throw httpError(status, response.statusMessage, text, session);
    }
    const type = String(response.headers['content-type'] ?? '');
    if (type.startsWith('text/event-stream')) {
      // The answer streams; notifications and requests about it may come first.
      void this.#consumeEvents(response, owner, signal).then((answered) => {
        if (!answered && !signal?.aborted && !this.#closed) options?.onRequestStreamEnd?.();
      });
      return;
    }
    const text = await readAll(response, this.#options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    if (text.trim() === '') return;
    const items = jsonRpcMessages(text);
    // An answer the SDK cannot match to its request would leave the caller waiting for its
    // timeout; failing the send tells it at once what came back instead.
    if (!items) throw new NotJsonRpcError(`HTTP ${status} (${type || 'no content-type'})`, text);
    for (let i = 0; i < items.length; i++) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve)); // see #consumeEvents
      this.#dispatch(items[i]!, owner);
    }
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
    for (const request of this.#inFlight) request.destroy();
    this.#inFlight.clear();
    this.#agent.destroy();
    this.onclose?.();
  }

  /**
   * `#request` with the auth's credentials; a refusal of them is shown to the auth, and the
   * request sent a second time if it has new ones. A second refusal is the answer.
   */
  async #authorizedRequest(method: string, headers: Record<string, string>, body?: string, signal?: AbortSignal): Promise<IncomingMessage> {
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

  #request(method: string, headers: Record<string, string>, body?: string, signal?: AbortSignal, query?: Record<string, string>): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const request = this.#send(withQuery(this.#url, query), {
        method,
        agent: this.#agent,
        // One spelling per name: a configured `Authorization` and the auth's `authorization` would both be sent.
        headers: lowerCased({
          ...this.#options.headers,
          ...(this.sessionId ? { 'mcp-session-id': this.sessionId } : {}),
          ...(this.#protocolVersion ? { 'mcp-protocol-version': this.#protocolVersion } : {}),
          ...headers,
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        }),
      });
      this.#inFlight.add(request);
      // Aborting ends this request and its response stream only, not the connection.
      const abort = () => request.destroy();
      signal?.addEventListener('abort', abort, { once: true });
      request.setNoDelay(true);
      request.once('response', (response) => {
        response.once('close', () => {
          this.#inFlight.delete(request);
          signal?.removeEventListener('abort', abort);
        });
        resolve(response);
      });
      request.once('error', (error) => {
        this.#inFlight.delete(request);
        signal?.removeEventListener('abort', abort);
        reject(Object.assign(new TypeError('fetch failed'), { cause: error }));
      });
      request.end(body);
    });
  }

  /** Delivers a JSON-RPC error body that answers `message` in-band; false when it is anything else. */
  #deliverRefusal(text: string, message: JSONRPCMessage, owner: unknown): boolean {
    const answer = jsonRpcMessages(text);
    const only = answer?.length === 1 ? answer[0]! : undefined;
    if (!only || !isJSONRPCErrorResponse(only) || !('id' in message) || only.id !== message.id) return false;
    this.#dispatch(only, owner);
    return true;
  }

  /**
   * The GET stream for messages the server sends on its own; reopened while the transport lives,
   * backing off while it fails, and parked while its credentials cannot be had.
   */
  #openStream(): void {
    if (this.#closed) return;
    this.#authorizedRequest('GET', { accept: 'text/event-stream' }).then(
      (response) => {
        const status = response.statusCode ?? 0;
        if (status === 401 || status === 403) {
          response.resume(); // refused for its credentials, which the auth could not renew
          this.#streamParked = true;
          return;
        }
        if (status === 405 || status === 404 || !String(response.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          response.resume(); // the server offers no such stream
          return;
        }
        this.#streamFailures = 0;
        void this.#consumeEvents(response, undefined, undefined).then(() => this.#retryStream());
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

  #retryStream(): void {
    if (this.#closed) return;
    const delay = Math.min(STREAM_RETRY_MS * 2 ** Math.max(0, this.#streamFailures - 1), MAX_STREAM_RETRY_MS);
    this.#streamRetry = setTimeout(() => this.#openStream(), delay);
    this.#streamRetry.unref();
  }

  /** Reads an SSE response to its end; resolves to whether an answer (a response) was among its events. */
  async #consumeEvents(response: IncomingMessage, owner: unknown, signal: AbortSignal | undefined): Promise<boolean> {
    const events: string[] = [];
    let answered = false;
    const parser = createParser({
      onEvent: (event) => {
        if ((event.event === undefined || event.event === 'message') && event.data.trim() !== '') events.push(event.data);
      },
    });
    response.setEncoding('utf8');
    try {
      for await (const chunk of response) {
        parser.feed(chunk as string);
        const batch = events.splice(0);
        for (let i = 0; i < batch.length; i++) {
          // The SDK handles a notification a microtask after receiving it but a response at
          // once; a notification and the answer arriving in one chunk (the last progress
          // report and the result, say) would otherwise swap places and the notification be lost.
          if (i > 0) await new Promise((resolve) => setImmediate(resolve));
          try {
            const message = this.#deliver(JSON.parse(batch[i]!), owner);
            if (message && (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message))) answered = true;
          } catch (error) {
            this.onerror?.(new Error(`upstream sent an SSE event that is not JSON: ${(error as Error).message}`));
          }
        }
      }
    } catch (error) {
      if (!this.#closed && !signal?.aborted) this.onerror?.(error as Error);
    }
    return answered;
  }

  #deliver(value: unknown, owner: unknown): JSONRPCMessage | undefined {
    const message = asJsonRpcMessage(value);
    if (message) this.#dispatch(message, owner);
    else this.onerror?.(new NotJsonRpcError('an SSE event', JSON.stringify(value)));
    return message;
  }

  #dispatch(message: JSONRPCMessage, owner: unknown): void {
    if (this.#options.owners) this.#options.owners.delivering = owner;
    this.onmessage?.(message);
  }
}

/** A refusal the auth may recover from: 401, or 403 naming `insufficient_scope`. */
function authChallenge(response: IncomingMessage): AuthChallenge | undefined {
  const status = response.statusCode;
  const header = response.headers['www-authenticate'];
  const wwwAuthenticate = Array.isArray(header) ? header.join(', ') : header;
  if (status === 401) return { status, wwwAuthenticate };
  if (status === 403 && wwwAuthenticate && INSUFFICIENT_SCOPE.test(wwwAuthenticate)) return { status, wwwAuthenticate };
  return undefined;
}

/** `url` with credentials in its query, when the auth puts them there. */
function withQuery(url: URL, query: Record<string, string> | undefined): URL {
  if (!query || Object.keys(query).length === 0) return url;
  const target = new URL(url);
  for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
  return target;
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
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

/**
 * An HTTP refusal as the SDK's own transport reports one: the status and the body's start,
 * which the SDK reads to tell a 2025-only server (a JSON-RPC error body) from an auth wall;
 * and the session the request named, if any (a 404 to it means the server forgot it).
 */
function httpError(status: number, statusText: string | undefined, text: string, sessionId: string | undefined): SdkHttpError {
  const session = sessionId !== undefined ? { sessionId } : {};
  // What an auth wall says is not kept: an upstream may echo the credentials it refused.
  if (status === 401) return new SdkHttpError(SdkErrorCode.ClientHttpAuthentication, 'upstream refused the credentials (401)', { status, statusText, text: '', ...session });
  if (status === 403) return new SdkHttpError(SdkErrorCode.ClientHttpForbidden, 'upstream refused access with these credentials (403)', { status, statusText, text: '', ...session });
  return new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint (HTTP ${status}): ${text.slice(0, 500)}`, { status, statusText, text, ...session });
}

function asJsonRpcMessage(value: unknown): JSONRPCMessage | undefined {
  try {
    return parseJSONRPCMessage(value);
  } catch {
    return undefined;
  }
}

/** The messages of a JSON response body, or undefined if it is not JSON-RPC. */
function jsonRpcMessages(text: string): JSONRPCMessage[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  const messages: JSONRPCMessage[] = [];
  for (const item of items) {
    const message = asJsonRpcMessage(item);
    if (!message) return undefined;
    messages.push(message);
  }
  return messages.length > 0 ? messages : undefined;
}

function readAll(response: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        response.destroy();
        reject(new Error(`upstream response larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.once('error', reject);
  });
}

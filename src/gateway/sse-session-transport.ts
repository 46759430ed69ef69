import { randomUUID } from 'node:crypto';
import {
  isJSONRPCErrorResponse,
  isJSONRPCResultResponse,
  parseJSONRPCMessage,
  type JSONRPCMessage,
  type MessageExtraInfo,
  type RequestId,
  type Transport,
} from '@modelcontextprotocol/server';

export interface SseSessionTransportOptions {
  /** Where the client posts its messages (a path); `?sessionId=<id>` is added. */
  endpoint: string;
  /**
   * A comment is written this often, so that proxies and load balancers that cut idle
   * connections (commonly after 60 s) keep the stream open.
   */
  keepAliveMs: number;
}

const encoder = new TextEncoder();
const KEEP_ALIVE = encoder.encode(': keep-alive\n\n');

/**
 * The server side of the 2024-11-05 HTTP+SSE transport, for clients that speak only that: one
 * long-lived event stream (`stream`, the body of the GET response) whose first event names the
 * endpoint to post to; every message to the client travels on it as an `event: message`. The
 * client's posts are handed in through `receive`. The session lives as long as the stream.
 */
export class SseSessionTransport implements Transport {
  /** Random (122 bits): knowing it is what lets a post reach this session, besides the principal. */
  readonly sessionId: string = randomUUID();
  /** The event stream, to be the body of the GET response. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Resolves once the stream has ended, from either side. */
  readonly ended: Promise<void>;

  onmessage?: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  /** Told of every answer sent (a result or an error), by the id of the request it answers. */
  onanswer?: ((id: RequestId) => void) | undefined;

  readonly #options: SseSessionTransportOptions;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #state: 'new' | 'open' | 'ended' = 'new';
  #keepAlive: NodeJS.Timeout | undefined;
  #markEnded!: () => void;

  constructor(options: SseSessionTransportOptions) {
    this.#options = options;
    this.ended = new Promise((resolve) => (this.#markEnded = resolve));
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      // The client went away (or the HTTP layer dropped the response).
      cancel: () => this.#end(),
    });
  }

  /** Writes the `endpoint` event: the client learns where to post, and the session can be used. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('SseSessionTransport already started');
    this.#state = 'open';
    this.#write(encoder.encode(`event: endpoint\ndata: ${this.#options.endpoint}?sessionId=${this.sessionId}\n\n`));
    this.#keepAlive = setInterval(() => this.#write(KEEP_ALIVE), this.#options.keepAliveMs).unref();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#state !== 'open') throw new Error('Not connected: the event stream has ended');
    this.#write(encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`));
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) {
      if (message.id !== undefined) this.onanswer?.(message.id);
    }
  }

  /**
   * One message the client posted, already parsed from JSON. Throws when it is not a JSON-RPC
   * message (the post is then refused), or when the stream has ended.
   */
  receive(body: unknown, extra: MessageExtraInfo): void {
    if (this.#state !== 'open') throw new Error('Not connected: the event stream has ended');
    const message = parseJSONRPCMessage(body);
    this.onmessage?.(message, extra);
  }

  /** Ends the stream; the client sees it close. */
  async close(): Promise<void> {
    if (this.#state === 'open') {
      try {
        this.#controller.close();
      } catch {
        // Already errored or cancelled: the stream is over either way.
      }
    }
    this.#end();
  }

  #write(bytes: Uint8Array): void {
    try {
      this.#controller.enqueue(bytes);
    } catch (error) {
      // The stream was closed underneath us: treat it as ended.
      this.onerror?.(error as Error);
      this.#end();
    }
  }

  #end(): void {
    if (this.#state === 'ended') return;
    this.#state = 'ended';
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    this.#markEnded();
    this.onclose?.();
  }
}

/**
 * One message the client posted to a session on this wire (on this replica, or through another
 * that forwarded it), its request known to the session until answered, so that closing the
 * session can answer (and cancel) it. Throws as `receive` does.
 */
export function receiveInSession(session: { readonly transport: SseSessionTransport; readonly requestsInFlight: Set<RequestId> }, body: unknown, extra: MessageExtraInfo): void {
  const requestId = requestIdOf(body);
  if (requestId !== undefined) session.requestsInFlight.add(requestId);
  try {
    session.transport.receive(body, extra);
  } catch (error) {
    if (requestId !== undefined) session.requestsInFlight.delete(requestId);
    throw error;
  }
  // A cancelled request is never answered (the SDK sends nothing for it): it is no longer in flight.
  const cancelled = cancelledIdOf(body);
  if (cancelled !== undefined) session.requestsInFlight.delete(cancelled);
}

/** The id of a request (a message with a method and an id); undefined for notifications and answers. */
function requestIdOf(body: unknown): RequestId | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { id, method } = body as { id?: unknown; method?: unknown };
  return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number') ? id : undefined;
}

/** The request a `notifications/cancelled` names; undefined for any other message. */
function cancelledIdOf(body: unknown): RequestId | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const { method, params } = body as { method?: unknown; params?: { requestId?: unknown } };
  const id = method === 'notifications/cancelled' ? params?.requestId : undefined;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

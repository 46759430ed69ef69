import {
  isJSONRPCResponse,
  WebStandardStreamableHTTPServerTransport,
  type EventStore,
  type HandleRequestOptions,
  type JSONRPCMessage,
  type RequestId,
  type WebStandardStreamableHTTPServerTransportOptions,
} from '@modelcontextprotocol/server';

/** The SDK transport's name for a session's GET stream in its event store: the same on every replica. */
export const STANDALONE_STREAM = '_GET_stream';

/** What a session's transport asks of the other replicas (see `replica-routing.ts`). */
export interface ReplicaLinks {
  /** The client's answer to a request the copy on `replica` sent (its id still tagged). */
  answerElsewhere(replica: string, message: JSONRPCMessage): void;
  /** A client's `notifications/cancelled`, delivered here too; the replica running the request may be another. */
  cancelled(requestId: RequestId, message: JSONRPCMessage): void;
  /** A message about no request: true when it went to the replica holding the session's GET stream instead. */
  standalone(message: JSONRPCMessage): Promise<boolean>;
}

export type ReplicatedTransportOptions = WebStandardStreamableHTTPServerTransportOptions & { replicaId: string };

/**
 * The SDK's Streamable HTTP transport for one copy of a session, when copies of it may live on
 * several replicas and the client's requests land on any of them.
 *
 * Requests the session's server sends the client (sampling, elicitation, roots, ping) leave
 * with ids tagged `<replicaId>:<n>`: the client's answer may be posted to another replica,
 * which reads the tag and hands the answer to this one (`answerElsewhere`); an answer tagged
 * with this replica's id is untagged and delivered here. A message about no request goes out
 * on the GET stream, which another replica may hold (`standalone`). Until `links` is set (the
 * session is not registered yet) the transport behaves as the SDK's.
 */
export class ReplicatedTransport extends WebStandardStreamableHTTPServerTransport {
  links: ReplicaLinks | undefined;
  readonly #tag: string;
  readonly #events: EventStore | undefined;

  constructor(options: ReplicatedTransportOptions) {
    super(options);
    this.#tag = `${options.replicaId}:`;
    this.#events = options.eventStore;
  }

  override async send(message: JSONRPCMessage, options?: { relatedRequestId?: RequestId }): Promise<void> {
    const outgoing = this.#tagged(message);
    if (options?.relatedRequestId === undefined && this.links && 'method' in outgoing && (await this.links.standalone(outgoing))) return;
    return super.send(outgoing, options);
  }

  /** Sends on this replica's own streams (or into the event store when none is open): a message another replica routed here. */
  sendHere(message: JSONRPCMessage): Promise<void> {
    return super.send(message);
  }

  override async handleRequest(request: Request, options?: HandleRequestOptions): Promise<Response> {
    if (request.method !== 'POST' || options?.parsedBody === undefined || !this.links) return super.handleRequest(request, options);
    const body = this.#inbound(options.parsedBody);
    // Only answers meant for other replicas: nothing is left for this copy to do.
    if (body === undefined) return new Response(null, { status: 202 });
    return super.handleRequest(request, body === options.parsedBody ? options : { ...options, parsedBody: body });
  }

  /** Whether a GET opens (or resumes) the session's GET stream rather than replaying a request's stream. */
  async opensStandaloneStream(request: Request): Promise<boolean> {
    const lastEventId = request.headers.get('last-event-id');
    if (!lastEventId) return true;
    return (await this.#events?.getStreamIdForEventId?.(lastEventId)) === STANDALONE_STREAM;
  }

  /** The posted body less the answers other replicas are owed; undefined when nothing is left. */
  #inbound(body: unknown): unknown {
    if (!Array.isArray(body)) return this.#one(body);
    const kept = body.map((message) => this.#one(message)).filter((message) => message !== undefined);
    if (kept.length === 0) return undefined;
    return kept.length === body.length && kept.every((message, i) => message === body[i]) ? body : kept;
  }

  /** Cheap shape checks first: every request on this path passes here. */
  #one(message: unknown): unknown {
    if (message === null || typeof message !== 'object') return message;
    const { id, method, params } = message as { id?: unknown; method?: unknown; params?: { requestId?: unknown } };
    if (method === undefined && typeof id === 'string') {
      const tagged = untag(id);
      if (!tagged || !isJSONRPCResponse(message)) return message;
      if (`${tagged.replica}:` === this.#tag) return { ...message, id: tagged.id };
      this.links!.answerElsewhere(tagged.replica, message);
      return undefined;
    }
    if (method === 'notifications/cancelled' && (typeof params?.requestId === 'string' || typeof params?.requestId === 'number')) {
      this.links!.cancelled(params.requestId, message as JSONRPCMessage);
    }
    return message;
  }

  /** The SDK numbers its requests; the number is kept after the tag, so an answer can be given back its own id. */
  #tagged(message: JSONRPCMessage): JSONRPCMessage {
    const { id, method, params } = message as { id?: unknown; method?: unknown; params?: { requestId?: unknown } };
    if (typeof method !== 'string') return message;
    if (typeof id === 'number') return { ...message, id: `${this.#tag}${id}` } as JSONRPCMessage;
    // The server giving up one of its own requests (a timeout) names it as the client knows it.
    if (method === 'notifications/cancelled' && typeof params?.requestId === 'number') {
      return { ...message, params: { ...params, requestId: `${this.#tag}${params.requestId}` } } as JSONRPCMessage;
    }
    return message;
  }
}

/** The replica and the SDK's own id behind a tagged id, or undefined when `id` carries no tag. */
export function untag(id: string): { replica: string; id: number } | undefined {
  const colon = id.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const number = id.slice(colon + 1);
  if (!/^\d+$/.test(number)) return undefined;
  return { replica: id.slice(0, colon), id: Number(number) };
}

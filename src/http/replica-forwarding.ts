import type { Logger } from 'pino';
import { z } from 'zod';
import type { BusRpc } from '../state/bus-rpc.js';

/** A request as it crosses the bus: the method, the path with its query, and the headers the sender chose to pass on. */
const ForwardedRequest = z.strictObject({
  method: z.enum(['GET', 'HEAD']),
  path: z.string().startsWith('/').max(8192),
  headers: z.record(z.string().max(256), z.string().max(16_384)),
});

/** The holder's answer as it crosses the bus: every header line (each Set-Cookie on its own), the body as text. */
const ForwardedResponse = z.strictObject({
  status: z.number().int().min(200).max(599),
  headers: z.array(z.tuple([z.string().min(1).max(256), z.string().max(16_384)])).max(64),
  body: z.string(),
});
type ForwardedResponse = z.infer<typeof ForwardedResponse>;

/**
 * The headers of the holder's answer that are relayed: what the forwarded routes (pages and
 * redirects of an authorization) set. Anything else a message on the bus claims (which anyone
 * who can write to Redis could send) is dropped, and hop-by-hop headers are the HTTP server's.
 */
const RELAYED_HEADERS = new Set(['content-type', 'cache-control', 'content-security-policy', 'referrer-policy', 'location', 'set-cookie', 'x-content-type-options']);
/** Statuses whose response has no body (a `Response` refuses one). */
const NO_BODY = new Set([204, 205, 304]);
/** The answering replica never sees the request's own origin; its routes read the path, query and headers only. */
const FORWARDED_ORIGIN = 'http://forwarded.invalid';

export interface ReplicaForwardingOptions {
  rpc: BusRpc;
  /** The bus topic; one per kind of route forwarded. */
  topic: string;
  /** Answers a request this replica holds the state of (forwarded from another replica). */
  answer: (request: Request) => Response | Promise<Response>;
  /** The headers of a request that go with it to the holder: only what its route reads. */
  headers: (request: Request) => Record<string, string>;
  /** How long a holder may take to answer. */
  timeoutMs: number;
  logger: Logger;
}

/**
 * HTTP requests (GET only: browser links) answered by the replica that holds what they name,
 * over the replica bus: `forward` sends one there and answers with the holder's response
 * (status, headers, body) as if the holder had been reached; this replica serves the same
 * topic for the others. Requests carry only the headers `headers` picks, answers only the
 * headers of `RELAYED_HEADERS` and text bodies (the routes forwarded answer pages and redirects).
 */
export class ReplicaForwarding {
  readonly #options: ReplicaForwardingOptions;

  /** Serves the topic from now on, until `rpc` closes. */
  constructor(options: ReplicaForwardingOptions) {
    this.#options = options;
    options.rpc.serve(options.topic, (payload, from) => this.#serve(payload, from));
  }

  /**
   * The holder's answer to `request`. Rejects with `ReplicaUnreachableError` when no replica
   * `holder` listens on the bus (it stopped, or never was) or it did not answer in time.
   */
  async forward(holder: string, request: Request): Promise<Response> {
    const url = new URL(request.url);
    const payload = ForwardedRequest.parse({ method: request.method, path: `${url.pathname}${url.search}`, headers: this.#options.headers(request) });
    const answer = ForwardedResponse.parse(await this.#options.rpc.call(holder, this.#options.topic, payload, { timeoutMs: this.#options.timeoutMs }));
    const headers = new Headers();
    for (const [name, value] of answer.headers) if (RELAYED_HEADERS.has(name.toLowerCase())) headers.append(name, value);
    return new Response(NO_BODY.has(answer.status) || request.method === 'HEAD' ? null : answer.body, { status: answer.status, headers });
  }

  async #serve(payload: unknown, from: string): Promise<ForwardedResponse> {
    const forwarded = ForwardedRequest.parse(payload);
    // Not the path: it may name what only its user should know (a link's handle).
    this.#options.logger.debug({ from, topic: this.#options.topic }, 'answering a request another replica received');
    const response = await this.#options.answer(new Request(new URL(forwarded.path, FORWARDED_ORIGIN), { method: forwarded.method, headers: forwarded.headers }));
    const headers: [string, string][] = [];
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie' && RELAYED_HEADERS.has(name)) headers.push([name, value]);
    });
    for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
    return { status: response.status, headers, body: await response.text() };
  }
}

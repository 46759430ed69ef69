import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import type { RequestAbort } from './request-abort.js';
import { ResponseHandler, type UpstreamResponse } from './upstream-response.js';

/**
 * Response headers that node:http keeps once when repeated (the first wins); any other repeated
 * header but `set-cookie` it joins with ", ". undici hands every repeated header over as an
 * array; the transport reads them as node:http gave them.
 */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** undici's own timeouts, off (0): see `UpstreamHttpPool`. Its default would cut a stream silent for 300 s. */
export const NO_UNDICI_TIMEOUTS = { headersTimeout: 0, bodyTimeout: 0 } as const;

export interface PoolTimeouts {
  /** How long opening a connection may take (DNS, TCP and TLS); undici's 10 s when not given. */
  connectTimeoutMs?: number | undefined;
  headersTimeout?: number;
  bodyTimeout?: number;
}

/**
 * The connections to one HTTP upstream: an undici pool of keep-alive connections to its origin,
 * which costs about half what node:http's request path does per request. Redirects are not
 * followed (a pool never follows them) and TLS verifies against Node's default CAs. undici's own
 * headers and body timeouts are off: an answer may take as long as its tool does, and a GET or
 * response stream lives as long as the session; the SDK's request timeouts and the transport's
 * aborts end them instead.
 */
export class UpstreamHttpPool {
  /** `Authorization` for the URL's user info, as node:http derived it; undefined without any. */
  readonly basicAuth: string | undefined;
  readonly #url: URL;
  readonly #path: string;
  readonly #pool: Pool;

  constructor(url: URL, { connectTimeoutMs, ...timeouts }: PoolTimeouts = {}) {
    this.#url = url;
    this.#path = url.pathname + url.search;
    this.#pool = new Pool(url.origin, {
      ...NO_UNDICI_TIMEOUTS,
      ...timeouts,
      // undici's default is 10 s, whatever the server's connect timeout says.
      ...(connectTimeoutMs !== undefined ? { connectTimeout: connectTimeoutMs } : {}),
      // A server's `Keep-Alive: timeout=N` hint is trusted to within 1 s, as node:http's agent does
      // (undici's 2 s would open a new connection for every call to a server hinting 2 s).
      keepAliveTimeoutThreshold: 1000,
    });
    this.basicAuth = url.username || url.password ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}` : undefined;
  }

  /**
   * Sends one request; resolves with its response once the headers came (`upstream-response.ts`:
   * an event stream's body comes as a stream, any other is read whole). Aborting `signal` ends
   * this request and its response stream only. A failure to connect or to get an answer rejects
   * with `TypeError('fetch failed')` caused by undici's error, as `fetch` reports it (see
   * `failure-classification.ts`); an abort rejects with the signal's reason.
   */
  async request(method: string, query: Record<string, string> | undefined, headers: Record<string, string>, body: string | undefined, signal: RequestAbort | undefined): Promise<UpstreamResponse> {
    if (signal?.aborted) throw signal.reason;
    try {
      return await new Promise<UpstreamResponse>((resolve, reject) => {
        const handler = new ResponseHandler({ resolve, reject }, nodeHeaders, () => stopListening?.());
        const stopListening = signal?.onAbort((reason) => handler.abort(reason instanceof Error ? reason : new Error(String(reason))));
        const options = { path: query && Object.keys(query).length > 0 ? this.#pathWith(query) : this.#path, method: method as Dispatcher.HttpMethod, headers, body: body ?? null };
        this.#pool.dispatch(options, handler);
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw Object.assign(new TypeError('fetch failed'), { cause: error });
    }
  }

  /** Ends every open request and response stream, and closes every connection; resolves once they are closed. */
  close(): Promise<void> {
    return this.#pool.destroy();
  }

  /** The URL's path with credentials in its query, when the auth puts them there. */
  #pathWith(query: Record<string, string>): string {
    const target = new URL(this.#url);
    for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
    return target.pathname + target.search;
  }
}

function nodeHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name in headers) {
    const value = headers[name];
    if (Array.isArray(value) && name !== 'set-cookie') headers[name] = FIRST_ONLY.has(name) ? value[0] : value.join(', ');
  }
  return headers;
}

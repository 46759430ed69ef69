import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { tooLarge } from './http-responses.js';

/**
 * An upstream's HTTP answer as the transport reads it: its status and headers, then its body,
 * read whole (`text`), discarded (`resume`), or (an event stream) read as it comes (`stream`).
 */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: IncomingHttpHeaders;
  /**
   * An answer that is an event stream (a 2xx `text/event-stream`): its body, read as it comes;
   * destroying it (leaving a `for await` over it) gives the request up. Undefined for any other.
   */
  readonly stream: Readable | undefined;
  /**
   * The body as UTF-8 text, failing as soon as it passes `limit` bytes (the request is then
   * given up), or with the error that broke it off.
   */
  text(limit: number): Promise<string>;
  /** The body is not wanted: what comes of it is dropped. */
  resume(): void;
}

/** An answer that is an event stream, its body read as it comes. */
export type EventStreamResponse = UpstreamResponse & { readonly stream: Readable };

/** Who waits for a request's `UpstreamResponse`: it once the headers came, or the failure that came before them. */
export interface ResponseSettler {
  resolve(response: UpstreamResponse): void;
  reject(error: Error): void;
}

/** Bytes of a body kept while nobody reads it yet: past this the connection is paused until someone does. */
const UNREAD_LIMIT = 64 * 1024;

/**
 * An undici dispatch handler that makes one request's `UpstreamResponse`: in place of undici's
 * `request()`, which builds an async resource and a body stream for every answer (a tenth to a
 * fifth of the upstream side's CPU per call, bench/upstream-hop.ts), a body that is not an event
 * stream is kept as the chunks it came in. `headers` converts undici's headers to node:http's
 * form. `abort` gives the request up at any point: before it was sent, while waiting for the
 * headers, or while its body is read.
 */
export class ResponseHandler implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #abortReason: Error | undefined;
  #answer: WholeBody | StreamedBody | undefined;

  constructor(
    private readonly settler: ResponseSettler,
    private readonly headers: (headers: IncomingHttpHeaders) => IncomingHttpHeaders,
    /** Called once the request is over (answered whole, failed, or given up). */
    private readonly onEnd: () => void,
  ) {}

  /** Gives the request up: it fails with `reason` (before the headers) or its body does (after). */
  abort(reason: Error): void {
    if (this.#controller) this.#controller.abort(reason);
    else this.#abortReason ??= reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason) controller.abort(this.#abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, rawHeaders: IncomingHttpHeaders, statusMessage?: string): void {
    // An interim answer (1xx): the real one follows.
    if (statusCode < 200) return;
    const headers = this.headers(rawHeaders);
    const head = { statusCode, statusMessage: statusMessage ?? '', headers };
    this.#answer = eventStream(statusCode, headers) ? new StreamedBody(head, controller) : new WholeBody(head, controller);
    this.settler.resolve(this.#answer);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#answer?.push(chunk, controller);
  }

  onResponseEnd(): void {
    this.#answer?.end();
    this.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#answer) this.#answer.fail(error);
    else this.settler.reject(error);
    this.onEnd();
  }
}

/** A 2xx `text/event-stream`: the answers a Streamable HTTP server streams. */
function eventStream(statusCode: number, headers: IncomingHttpHeaders): boolean {
  return statusCode >= 200 && statusCode < 300 && String(headers['content-type'] ?? '').startsWith('text/event-stream');
}

interface Head {
  statusCode: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
}

/** A body read whole: the chunks as they came, until someone asks for the text or drops it. */
class WholeBody implements UpstreamResponse {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: IncomingHttpHeaders;
  readonly stream = undefined;
  #chunks: Buffer[] = [];
  #size = 0;
  #ended = false;
  #failure: Error | undefined;
  #dropped = false;
  #reader: { limit: number; resolve: (text: string) => void; reject: (error: Error) => void } | undefined;

  constructor(
    head: Head,
    private readonly controller: Dispatcher.DispatchController,
  ) {
    this.statusCode = head.statusCode;
    this.statusMessage = head.statusMessage;
    this.headers = head.headers;
  }

  text(limit: number): Promise<string> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#size > limit) return Promise.reject(this.#tooLarge(limit));
    if (this.#ended) return Promise.resolve(this.#joined());
    return new Promise((resolve, reject) => {
      this.#reader = { limit, resolve, reject };
      this.controller.resume();
    });
  }

  resume(): void {
    this.#dropped = true;
    this.#chunks = [];
    this.controller.resume();
  }

  push(chunk: Buffer, controller: Dispatcher.DispatchController): void {
    if (this.#dropped) return;
    this.#size += chunk.length;
    const reader = this.#reader;
    if (reader && this.#size > reader.limit) {
      reader.reject(this.#tooLarge(reader.limit));
      return;
    }
    this.#chunks.push(chunk);
    if (!reader && this.#size > UNREAD_LIMIT) controller.pause();
  }

  end(): void {
    this.#ended = true;
    this.#reader?.resolve(this.#joined());
  }

  fail(error: Error): void {
    this.#failure ??= error;
    this.#reader?.reject(error);
  }

  #joined(): string {
    return this.#chunks.length === 1 ? this.#chunks[0]!.toString('utf8') : Buffer.concat(this.#chunks).toString('utf8');
  }

  /** Over the limit: the rest is not read, and the request is given up (its connection closed). */
  #tooLarge(limit: number): Error {
    const error = tooLarge('a response body', limit);
    this.fail(error);
    this.controller.abort(error);
    return error;
  }
}

/** An event stream's body: a readable stream that pauses the connection while it is not read. */
class StreamedBody implements UpstreamResponse {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: IncomingHttpHeaders;
  readonly stream: Readable;

  constructor(head: Head, controller: Dispatcher.DispatchController) {
    this.statusCode = head.statusCode;
    this.statusMessage = head.statusMessage;
    this.headers = head.headers;
    let over = false;
    this.stream = new Readable({
      read: () => controller.resume(),
      destroy: (error, callback) => {
        // Destroyed by its reader before its end: the request is given up.
        if (!over) controller.abort(error ?? new Error('the response stream was closed'));
        over = true;
        callback(error);
      },
    });
    this.#finish = () => (over = true);
  }

  readonly #finish: () => void;

  text(limit: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      this.stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          const error = tooLarge('a response body', limit);
          this.stream.destroy(error);
          reject(error);
          return;
        }
        chunks.push(chunk);
      });
      this.stream.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      this.stream.once('error', reject);
    });
  }

  resume(): void {
    this.stream.resume();
  }

  push(chunk: Buffer, controller: Dispatcher.DispatchController): void {
    if (!this.stream.push(chunk)) controller.pause();
  }

  end(): void {
    this.#finish();
    this.stream.push(null);
  }

  fail(error: Error): void {
    this.#finish();
    this.stream.destroy(error);
  }
}

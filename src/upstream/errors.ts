/**
 * Typed upstream failures. They never cross the wire as they are: each surface maps their kind
 * (`upstream_unavailable`, `upstream_timeout`) to a tool error, a JSON-RPC error or an HTTP
 * status in one place (`gateway/error-mapping.ts`, `http/api/api-errors.ts`), so that "upstream
 * unavailable" is never reported as the client's bad request.
 */
import { ConfluxError, type ErrorKind } from '../errors.js';

/** The upstream is not connected (starting, down, or disabled). */
export class UpstreamUnavailableError extends ConfluxError {
  readonly kind: ErrorKind = 'upstream_unavailable';

  constructor(
    readonly server: string,
    readonly reason: string,
  ) {
    super(`upstream "${server}" is unavailable: ${reason}`);
    this.name = 'UpstreamUnavailableError';
  }

  override clientDetails(): { server: string } {
    return { server: this.server };
  }
}

/** The upstream did not answer within its timeout. */
export class UpstreamTimeoutError extends ConfluxError {
  readonly kind: ErrorKind = 'upstream_timeout';

  constructor(
    readonly server: string,
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`upstream "${server}" did not answer ${method} within ${formatSeconds(timeoutMs)}`);
    this.name = 'UpstreamTimeoutError';
  }

  override clientDetails(): { server: string } {
    return { server: this.server };
  }
}

/** The connection broke while a request was in flight. */
export class UpstreamConnectionLostError extends ConfluxError {
  readonly kind: ErrorKind = 'upstream_unavailable';

  constructor(
    readonly server: string,
    readonly method: string,
    readonly reason: string,
  ) {
    super(`upstream "${server}" lost its connection during ${method}: ${reason}`);
    this.name = 'UpstreamConnectionLostError';
  }

  override clientDetails(): { server: string } {
    return { server: this.server };
  }
}

/**
 * The upstream answered, but not in MCP: non-JSON-RPC bytes on a stdio server's stdout, or an
 * HTTP answer whose body is not JSON-RPC (a proxy's HTML page, say). It extends the
 * connection-lost error so every surface maps it the same way (the upstream, not the client,
 * is at fault), but its message says what actually came back.
 */
export class UpstreamBadResponseError extends UpstreamConnectionLostError {
  constructor(server: string, method: string, reason: string) {
    super(server, method, reason);
    this.message = `upstream "${server}" sent a response to ${method} that is not MCP: ${reason}`;
    this.name = 'UpstreamBadResponseError';
  }
}

/**
 * The upstream and Conflux share no protocol version: what the server offers (a future
 * revision only, say) is not among what Conflux speaks, and it refuses the others. No retry can
 * fix that; the server waits for a config change, an upgrade, or an admin restart.
 */
export class NoCommonVersionError extends Error {
  constructor(
    readonly offered: readonly string[],
    readonly spoken: readonly string[],
  ) {
    const offers = offered.length > 0 ? `offers ${offered.join(', ')}` : 'offers no version Conflux knows';
    super(`no protocol version in common: the server ${offers}; Conflux speaks ${spoken.join(', ')}`);
    this.name = 'NoCommonVersionError';
  }
}

/**
 * A failed connection attempt to an HTTP upstream, worded for a person: the cause in words and
 * the URL it was tried at (without credentials). The failure as the SDK or the network raised
 * it is the `cause`, which is what classifying it looks at.
 */
export class UpstreamConnectError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'UpstreamConnectError';
  }
}

/** Raised by a transport that received bytes that are not a JSON-RPC message. */
export class NotJsonRpcError extends Error {
  /** The start of what was received (no more is kept). */
  readonly sample: string;

  constructor(
    /** Where it came from, e.g. `stdout` or `HTTP 200 (text/html)`. */
    readonly source: string,
    received: string,
  ) {
    const sample = received.length > 120 ? `${received.slice(0, 120)}…` : received;
    super(`${source} carried something that is not JSON-RPC: ${JSON.stringify(sample)}`);
    this.sample = sample;
    this.name = 'NotJsonRpcError';
  }

  /** What it was, without what it said: for a request the output cannot be tied to. */
  get summary(): string {
    return `${this.source} carried something that is not JSON-RPC`;
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

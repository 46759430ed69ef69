/**
 * Typed upstream failures. They never cross the wire as they are: the gateway maps them to a
 * tool error or a JSON-RPC error in one place (`gateway/error-mapping.ts`), so that "upstream
 * unavailable" is never reported as the client's bad request.
 */

/** The upstream is not connected (starting, down, or disabled). */
export class UpstreamUnavailableError extends Error {
  constructor(
    readonly server: string,
    readonly reason: string,
  ) {
    super(`upstream "${server}" is unavailable: ${reason}`);
    this.name = 'UpstreamUnavailableError';
  }
}

/** The upstream did not answer within its timeout. */
export class UpstreamTimeoutError extends Error {
  constructor(
    readonly server: string,
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`upstream "${server}" did not answer ${method} within ${formatSeconds(timeoutMs)}`);
    this.name = 'UpstreamTimeoutError';
  }
}

/** The connection broke while a request was in flight. */
export class UpstreamConnectionLostError extends Error {
  constructor(
    readonly server: string,
    readonly method: string,
    readonly reason: string,
  ) {
    super(`upstream "${server}" lost its connection during ${method}: ${reason}`);
    this.name = 'UpstreamConnectionLostError';
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

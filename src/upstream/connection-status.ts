import type { ServerConfig } from '../config/schema.js';
import type { UpstreamAuthError } from './auth/upstream-auth.js';
import type { BreakerState } from './circuit-breaker.js';
import type { NegotiatedProtocol } from './era-negotiation.js';
import { authFailureIn, describeError } from './failure-classification.js';

export type UpstreamState = 'connecting' | 'ready' | 'degraded' | 'down' | 'misconfigured' | 'disabled';

/** A public, serialisable view of one upstream. */
export interface UpstreamStatus {
  name: string;
  state: UpstreamState;
  transport: ServerConfig['transport'];
  wire: 'stdio' | 'streamable-http' | 'sse' | undefined;
  description: string | undefined;
  tags: string[];
  toolCount: number;
  lastError: string | undefined;
  connectedAt: string | undefined;
  nextRetryAt: string | undefined;
  pid: number | undefined;
  breaker: BreakerState;
  /** The protocol era and version of the last connection (2026-07-28 is `modern`); undefined before the first. */
  protocol: NegotiatedProtocol | undefined;
}

/** The state to report: a connected server whose breaker is not closed or whose pings fail is `degraded`. */
export function reportedState(state: UpstreamState, breaker: BreakerState, pingFailures: number): UpstreamState {
  if (state === 'ready' && (breaker !== 'closed' || pingFailures > 0)) return 'degraded';
  return state;
}

/**
 * The state a connection moves to when it asks for `next`, and whether the pool is told:
 * `disabled` stays (a config change replaces the connection), and every `ready` is told, a
 * reconnected one too, since it comes with lists fetched afresh.
 */
export function stateChange(current: UpstreamState, next: UpstreamState): { state: UpstreamState; notify: boolean } {
  if (current === 'disabled') return { state: current, notify: false };
  return { state: next, notify: current !== next || next === 'ready' };
}

/**
 * Why an upstream last failed, as readers see it. The text often quotes the upstream (a
 * child's stderr tail, an HTTP error body), which may print secrets, and it reaches `/servers`
 * and tool errors: it is stored redacted, so no reader can show it raw.
 */
export class FailureNotes {
  #lastError: string | undefined;
  #authFailure: UpstreamAuthError | undefined;

  constructor(private readonly redact: (text: string) => string) {}

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Why the last connection attempt could not authenticate (the error, with its URL to authorise at), if that was why. */
  get authFailure(): UpstreamAuthError | undefined {
    return this.#authFailure;
  }

  setLastError(text: string | undefined): void {
    this.#lastError = text === undefined ? undefined : this.redact(text);
  }

  /** A connection attempt failed: its description, and its typed reason when it could not authenticate. */
  connectFailed(error: unknown): void {
    this.setLastError(describeError(error));
    const authFailure = authFailureIn(error);
    this.#authFailure = authFailure && this.redactedAuth(authFailure);
  }

  /** A connection became ready: no failure stands. */
  connected(): void {
    this.setLastError(undefined);
    this.#authFailure = undefined;
  }

  /**
   * `error` with its message redacted like `lastError`: it reaches tool errors and the REST API
   * as it is. Redacted in place, so that what else it is (an `AuthorizationRequiredError` with
   * its URL and callback) stays.
   */
  redactedAuth(error: UpstreamAuthError): UpstreamAuthError {
    const message = this.redact(error.message);
    if (message !== error.message) error.message = message;
    return error;
  }
}

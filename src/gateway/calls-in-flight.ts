import type { RequestId } from '@modelcontextprotocol/server';

/** What a session must offer to hold calls: its lifetime, whose end cancels them all. */
export interface CallHolder {
  readonly lifetime: { readonly signal: AbortSignal };
}

/**
 * The calls in flight on one path, by session and JSON-RPC id, so that `notifications/cancelled`
 * reaches the call it names and a session closing reaches all of them.
 *
 * MCP forbids a client to reuse a request id within a session. A second call under an id still
 * in flight is refused (`claim` answers undefined) rather than registered over the first: the
 * first would then be out of reach of its own cancellation, and the end of either would drop
 * the other's entry. The SDK's session server takes the last one instead, and its transport then
 * sends the first answer on the second request's stream; refusing keeps both requests whole.
 */
export class CallsInFlight<S extends CallHolder = CallHolder> {
  readonly #bySession = new WeakMap<S, Map<RequestId, AbortController>>();

  /**
   * Registers the call `id` of `session`, aborted through `controller`. Returns what ends the
   * registration (call it once the call has been answered), or undefined when `id` is taken.
   */
  claim(session: S, id: RequestId, controller: AbortController): (() => void) | undefined {
    const calls = this.#callsOf(session);
    if (calls.has(id)) return undefined;
    calls.set(id, controller);
    return () => {
      if (calls.get(id) === controller) calls.delete(id);
    };
  }

  /** Aborts the call `id` of `session` with `reason`; false when no such call is in flight. */
  cancel(session: S, id: RequestId, reason: unknown): boolean {
    const controller = this.#bySession.get(session)?.get(id);
    controller?.abort(reason);
    return controller !== undefined;
  }

  #callsOf(session: S): Map<RequestId, AbortController> {
    let calls = this.#bySession.get(session);
    if (!calls) {
      const inSession = (calls = new Map());
      this.#bySession.set(session, inSession);
      // One listener per session, not per call: closing aborts every call then in flight.
      const closing = session.lifetime.signal;
      closing.addEventListener(
        'abort',
        () => {
          for (const inFlight of inSession.values()) inFlight.abort(closing.reason);
        },
        { once: true },
      );
    }
    return calls;
  }
}

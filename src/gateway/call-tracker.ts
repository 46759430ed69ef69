import type { DownstreamCall } from './downstream-call.js';

/**
 * Which downstream requests are in flight on each upstream. An upstream shares one connection
 * among all sessions, and its server-to-client requests and log messages carry no reference
 * to the request that caused them, so they are attributed to the in-flight calls: to the one
 * session with calls there, or to nobody when calls of several sessions are in flight, so a
 * session never sees a message that may belong to another.
 */
export class CallTracker {
  readonly #inFlight = new Map<string, Set<DownstreamCall>>();

  /** Upstream requests in flight, all servers together (graceful shutdown waits for 0). */
  get size(): number {
    let total = 0;
    for (const calls of this.#inFlight.values()) total += calls.size;
    return total;
  }

  /** Records `call` as in flight on `server`; the returned function ends it. */
  begin(server: string, call: DownstreamCall): () => void {
    let calls = this.#inFlight.get(server);
    if (!calls) this.#inFlight.set(server, (calls = new Set()));
    calls.add(call);
    return () => {
      calls.delete(call);
      if (calls.size === 0 && this.#inFlight.get(server) === calls) this.#inFlight.delete(server);
    };
  }

  /** The call an upstream message belongs to: `undefined` when none is in flight, `'ambiguous'` when several sessions have one. */
  attribute(server: string): DownstreamCall | 'ambiguous' | undefined {
    const calls = this.#inFlight.get(server);
    if (!calls || calls.size === 0) return undefined;
    let chosen: DownstreamCall | undefined;
    for (const call of calls) {
      if (chosen && chosen.sessionId !== call.sessionId) return 'ambiguous';
      chosen = call; // the latest call of the one session
    }
    return chosen;
  }
}

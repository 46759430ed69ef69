/*
 * SDK assumptions: what Conflux relies on the MCP SDK (one exact version, pinned in
 * package.json) to do without the SDK promising it. tests/unit/sdk-assumptions.test.ts shows
 * each with real SDK objects, so that an upgrade that changes one fails there, by name.
 *
 * 1. `Protocol.request` calls `transport.send` synchronously: this channel hands a request its
 *    owner that way.
 * 2. A delivered message is handled in the microtasks right after `onmessage` (a response
 *    settles its request at once, a notification's handler runs a microtask later): so the
 *    HTTP and stdio transports deliver one message per event-loop turn (`setImmediate`), a
 *    handler still reads its own message's `delivering`, and a progress report is not lost
 *    behind the answer that follows it (see also `answersAfterNotifications` in
 *    open-transport.ts).
 * 3. A `notifications/cancelled` fed to a server transport's `onmessage` stops that request's
 *    handler, which then sends no answer of its own: how the gateway cancels the calls of a
 *    closing session (gateway/downstream-session.ts), of a client that went away
 *    (http/mcp-endpoint.ts) and of a session held by another replica (gateway/replica-routing.ts).
 * 4. A request fails with the error its `transport.send` promise rejects with, however long
 *    after the message went out: how http-client-transport.ts fails a request whose answer
 *    stream ended without the answer.
 * 5. `Protocol._requestMessageId` is the number the client gives its next request, counted up
 *    per request: direct-request.ts numbers the requests it sends past the client from it, so
 *    that an upstream sees one sequence of ids, as from the client alone.
 */

/**
 * Carries the owner of an upstream request (the downstream call it serves) to the transport
 * that sends it, and back to the handlers of the messages on that request's response stream.
 *
 * Both hand-overs are synchronous: the SDK client calls `transport.send` within `request()`,
 * and handles a delivered message in the microtasks right after `onmessage`, before the
 * transport can deliver another (it delivers one message per event-loop turn). This replaces an
 * AsyncLocalStorage, whose promise hook cost about a sixth of the gateway's CPU under load.
 */
export class OwnerChannel {
  #outgoing: unknown;
  /** The owner of the message being delivered; read by its handlers. */
  delivering: unknown;

  /** Runs `send` (which must call the transport's `send` synchronously) with `owner` on offer. */
  offer<T>(owner: unknown, send: () => T): T {
    this.#outgoing = owner;
    try {
      return send();
    } finally {
      this.#outgoing = undefined;
    }
  }

  /** Called by the transport at the start of `send`: the owner of the message being sent. */
  take(): unknown {
    const owner = this.#outgoing;
    this.#outgoing = undefined;
    return owner;
  }
}

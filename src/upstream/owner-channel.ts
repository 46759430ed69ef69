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

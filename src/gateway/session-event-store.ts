import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server';

/**
 * The recent SSE events of one session, so a client that lost a stream can resume it with
 * `Last-Event-ID` (and so every stream starts with a priming event). It belongs to its
 * session and is dropped with it; only the newest `capacity` events are kept.
 */
export class SessionEventStore implements EventStore {
  readonly #events = new Map<string, { streamId: string; message: JSONRPCMessage }>();
  readonly #capacity: number;
  #sequence = 0;

  constructor(capacity = 100) {
    this.#capacity = capacity;
  }

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const eventId = `${++this.#sequence}.${streamId}`;
    this.#events.set(eventId, { streamId, message });
    if (this.#events.size > this.#capacity) this.#events.delete(this.#events.keys().next().value!);
    return eventId;
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return this.#events.get(eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    const last = this.#events.get(lastEventId);
    if (!last) throw new Error(`event ${lastEventId} is unknown or too old to resume from`);
    let after = false;
    for (const [eventId, event] of this.#events) {
      if (after && event.streamId === last.streamId && Object.keys(event.message).length > 0) await send(eventId, event.message);
      if (eventId === lastEventId) after = true;
    }
    return last.streamId;
  }
}

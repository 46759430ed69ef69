/** A client transport's message handler, as both SDK majors type it. */
type Deliver<M, E> = (message: M, extra?: E) => void;

/**
 * Makes a connected SDK client settle each answer one microtask after it is read, so that the
 * notifications read just before it are handled first.
 *
 * Both SDK clients (1.x and 2.x) run a notification's handler a microtask after receiving it but
 * settle a response at once, dropping its request's progress handler: a progress report read in
 * the same chunk as the answer that follows it is then reported through `onerror` ("unknown
 * token") and never reaches `onprogress` (modelcontextprotocol/typescript-sdk issue #2580). The
 * legacy SSE transport of both dispatches every event of a chunk at once, and a client reads both
 * in one chunk whenever the server wrote them before it read (a loaded machine). The gateway does
 * the same for its own upstream clients (`answersAfterNotifications` in open-transport.ts).
 *
 * An answer is only moved behind what came before it on the wire: a progress report sent after
 * its answer is still lost, so a test keeps seeing a gateway that reorders them.
 */
export function answersAfterNotifications<M extends object, E>(transport: { onmessage?: Deliver<M, E> | undefined }): void {
  const deliver = transport.onmessage;
  if (!deliver) throw new Error('the client is not connected yet: its message handler is what gets deferred');
  transport.onmessage = (message, extra) => {
    if ('id' in message && !('method' in message)) queueMicrotask(() => deliver.call(transport, message, extra));
    else deliver.call(transport, message, extra);
  };
}

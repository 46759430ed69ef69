/**
 * The same response, with `onEnd` called once when its body finishes or (`cancelled`) the client
 * goes away. `closable` receives a function that ends the body from the server's side.
 */
export function onBodyEnd(response: Response, onEnd: (cancelled: boolean) => void, closable?: (close: () => void) => void): Response {
  let ended = false;
  const end = (cancelled = false) => {
    if (!ended) {
      ended = true;
      onEnd(cancelled);
    }
  };
  const reader = response.body!.getReader();
  // A pending read then resolves as done, which ends the body the client sees.
  // Cancelling our own response's reader rejects only when that stream already failed, which the read loop reports.
  closable?.(() => void reader.cancel('closed by the gateway').catch(() => {}));
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          end();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        end();
        controller.error(error);
      }
    },
    cancel(reason) {
      end(true);
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

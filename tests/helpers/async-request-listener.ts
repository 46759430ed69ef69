import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/**
 * A `createServer` listener made of an async handler. Node does not wait for what a listener
 * returns, so a handler that fails would leave its client waiting until the test times out:
 * here the failure resets the client's connection at once, and is thrown on as an unhandled
 * rejection, which vitest reports as a failed run (and which ends a fixture's own process).
 */
export function asyncRequestListener(handler: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>): RequestListener {
  return (req, res) => {
    void handler(req, res).catch((error: unknown) => {
      res.destroy();
      throw error;
    });
  };
}

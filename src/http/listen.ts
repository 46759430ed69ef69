import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

export interface Listening {
  port: number;
  /** Stops accepting connections; open ones (SSE streams, calls in flight) stay until `cut`. */
  stopAccepting(): Promise<void>;
  /**
   * Resolves true once every response being written has finished (GET event streams, which
   * live as long as their session, and 2026-07-28 `subscriptions/listen` streams, which live as
   * long as their client, excepted), or false after `ms`.
   */
  answered(ms: number): Promise<boolean>;
  /** Ends every open connection. */
  cut(): void;
}

/** Serves `app` on `host:port` (port 0 picks a free one). */
export function listen(app: { fetch: Hono["fetch"] }, host: string, port: number): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch as never, hostname: host, port }) as Server;
    // Responses are small and latency matters more than packet count.
    server.on('connection', (socket) => socket.setNoDelay(true));
    // Answers being written, so shutdown can let them reach their clients before it cuts.
    let writing = 0;
    let draining = false;
    const waiters = new Set<() => void>();
    // One listener for every response (a response closes once): nothing is allocated per request.
    const answerClosed = () => {
      if (--writing === 0) for (const wake of waiters) wake();
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // Once shutdown began, a keep-alive connection carries no further request after this one.
      if (draining) res.shouldKeepAlive = false;
      if (req.method === 'GET' && req.headers.accept?.includes('text/event-stream')) return;
      // Told by its Mcp-Method header, which the 2026-07-28 handler requires to match the body.
      if (req.method === 'POST' && req.headers['mcp-method'] === 'subscriptions/listen') return;
      writing++;
      res.on('close', answerClosed);
    });
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      const closed = new Promise<void>((done) => server.once('close', () => done()));
      resolve({
        port: (server.address() as AddressInfo).port,
        answered: (ms) =>
          new Promise<boolean>((done) => {
            if (writing === 0) return done(true);
            const wake = () => {
              clearTimeout(timer);
              waiters.delete(wake);
              done(true);
            };
            const timer = setTimeout(() => {
              waiters.delete(wake);
              done(false);
            }, ms);
            waiters.add(wake);
          }),
        stopAccepting: async () => {
          draining = true;
          server.close();
          server.closeIdleConnections();
        },
        cut: () => {
          server.closeAllConnections();
          void closed;
        },
      });
    });
  });
}

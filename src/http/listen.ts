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
   * long as their client, excepted once their event-stream head is written), or false after `ms`.
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
    // Ahead of the app's own listener, which may write a response's head before returning.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      // Once shutdown began, a keep-alive connection carries no further request after this one.
      if (draining) res.shouldKeepAlive = false;
      writing++;
      let counted = true;
      const uncount = () => {
        if (!counted) return;
        counted = false;
        res.off('close', uncount);
        answerClosed();
      };
      res.on('close', uncount);
      // A long-lived stream is told by what the gateway answered, not by what the client
      // claims: a GET, or a listen (whose Mcp-Method header was checked against its body before
      // it was served), answered with an event stream. Anything else refused or answered is
      // waited for like any answer.
      const streamable = req.method === 'GET' || (req.method === 'POST' && req.headers['mcp-method'] === 'subscriptions/listen');
      if (streamable) {
        const writeHead = res.writeHead;
        res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
          const written = (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
          if (isEventStream(contentTypeOf(this, args))) uncount();
          return written;
        } as typeof res.writeHead;
      }
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

/** The content type a `writeHead` call sent: from its header argument, or from headers set before. */
function contentTypeOf(res: ServerResponse, args: readonly unknown[]): string | undefined {
  const given = args.findLast((a) => a !== null && typeof a === 'object');
  if (Array.isArray(given)) {
    for (let i = 0; i + 1 < given.length; i += 2) if (String(given[i]).toLowerCase() === 'content-type') return String(given[i + 1]);
  } else if (given) {
    for (const [name, value] of Object.entries(given)) if (name.toLowerCase() === 'content-type') return String(value);
  }
  const set = res.getHeader('content-type');
  return set === undefined ? undefined : String(set);
}

function isEventStream(contentType: string | undefined): boolean {
  return contentType?.toLowerCase().startsWith('text/event-stream') === true;
}

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

export interface Listening {
  port: number;
  /** Stops accepting connections; open ones (SSE streams, calls in flight) stay until `cut`. */
  stopAccepting(): Promise<void>;
  /** Ends every open connection. */
  cut(): void;
}

/** Serves `app` on `host:port` (port 0 picks a free one). */
export function listen(app: { fetch: Hono["fetch"] }, host: string, port: number): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch as never, hostname: host, port }) as Server;
    // Responses are small and latency matters more than packet count.
    server.on('connection', (socket) => socket.setNoDelay(true));
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      const closed = new Promise<void>((done) => server.once('close', () => done()));
      resolve({
        port: (server.address() as AddressInfo).port,
        stopAccepting: async () => {
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

import { createServer } from 'node:net';

/** The address the gateway is to listen on cannot be had; the message says why and what to change. */
export class PortUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PortUnavailableError';
  }
}

export interface PortReservation {
  /** Lets the port go, for the gateway's own listener to take it at once; again, does nothing. */
  release(): Promise<void>;
}

/**
 * Holds `host:port` while the gateway starts, so a port another program uses is reported
 * before the database is opened or a single upstream started (the first start can take half a
 * minute), and a second gateway starting alongside finds it taken. Port 0 (any free port)
 * needs no reservation.
 */
export async function reservePort(host: string, port: number): Promise<PortReservation> {
  if (port === 0) return { release: async () => {} };
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new PortUnavailableError(unavailable(error, host, port), { cause: error })));
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  let released: Promise<void> | undefined;
  return { release: () => (released ??= new Promise<void>((resolve) => server.close(() => resolve()))) };
}

function unavailable(error: NodeJS.ErrnoException, host: string, port: number): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return `port ${port} is in use (another Conflux or program?): set CONFLUX_PORT or gateway.port`;
    case 'EACCES':
      return `port ${port} needs privileges this process lacks (ports below 1024 usually do): set CONFLUX_PORT or gateway.port`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen on ${host}: not an address of this machine: set CONFLUX_HOST or gateway.host`;
    default:
      return `cannot listen on ${host}:${port}: ${error.message}`;
  }
}

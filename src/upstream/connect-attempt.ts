import type { Client, Transport } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import { UpstreamAuthError } from './auth/upstream-auth.js';
import type { EraMemory } from './era-verdicts.js';
import { openClient, type OpenedClient, type OpenOptions } from './open-transport.js';

/**
 * The connection attempt under way, and how to give it up. An attempt still opening has a
 * child (or a request) of its own, not yet the connection's: giving it up closes that, and
 * `stop()` can wait for the child to be gone.
 */
export class AbortableAttempt {
  #current: { done: Promise<void>; abort: AbortController } | undefined;

  /** Runs `attempt` with a signal that `abort` fires. */
  begin(attempt: (signal: AbortSignal) => Promise<void>): void {
    const abort = new AbortController();
    const current = { abort, done: attempt(abort.signal) };
    this.#current = current;
    const settled = () => {
      if (this.#current === current) this.#current = undefined;
    };
    current.done.then(settled, settled);
  }

  /** Gives the attempt under way up with `reason`; the promise settles when it has ended (at once without one). */
  abort(reason: Error): Promise<void> | undefined {
    const current = this.#current;
    current?.abort.abort(reason);
    return current?.done;
  }
}

export interface SessionOpening extends OpenOptions {
  server: string;
  /** Given, it must be ready within the connect timeout (`timeoutMs`) before anything is sent. */
  auth?: OpenOptions['auth'];
  /** The server's remembered era: a verdict this connection found out is remembered. */
  era: EraMemory;
  /** Whether the connection was stopped or began another attempt meanwhile. */
  superseded: () => boolean;
}

/**
 * Opens one upstream session: credentials first, then the wire and the protocol handshake
 * (`openClient`). Undefined when the connection was stopped or superseded meanwhile; a client
 * opened by then is closed.
 */
export async function openSession(opening: SessionOpening): Promise<OpenedClient | undefined> {
  const { server, era, superseded, ...options } = opening;
  if (options.auth) {
    // An authorization server that never answers must not hold the connection beyond its connect timeout.
    await withDeadline(options.auth.ready(), options.timeoutMs, () => new UpstreamAuthError('failed', server, `no credentials within ${options.timeoutMs / 1000}s`));
    // Stopped (or superseded) while the credentials were being got: nothing more is sent.
    if (superseded()) return undefined;
  }
  const opened = await openClient(options);
  if (superseded()) {
    await bestEffort(() => opened.client.close(), options.logger, 'close a superseded connection');
    return undefined;
  }
  if (opened.learned) void era.remember(opened.verdict);
  return opened;
}

/**
 * Closes an upstream session's client. `polite` first ends the session on an HTTP upstream
 * (DELETE), giving it a second at most.
 */
export async function closeSession(client: Client, transport: Transport | undefined, polite: boolean, logger: Logger): Promise<void> {
  if (polite && transport && 'terminateSession' in transport) {
    await bestEffort(() => withTimeout((transport as { terminateSession: () => Promise<void> }).terminateSession(), 1000), logger, 'end the upstream session (HTTP DELETE)');
  }
  await bestEffort(() => client.close(), logger, 'close the upstream client');
}

/** `work`, or the error `timeout` makes when it has not settled within `ms`. */
async function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(timeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** `promise`'s value, or undefined when it has not settled within `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

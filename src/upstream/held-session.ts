import type { Client, ServerCapabilities, Transport } from '@modelcontextprotocol/client';
import type { UpstreamStatus } from './connection-status.js';
import type { NegotiatedProtocol } from './era-negotiation.js';
import { newProcessKey } from './minted-values.js';
import type { OpenedClient } from './open-transport.js';
import type { LiveSession } from './request-forwarding.js';
import { carryTaskHandles } from './task-results.js';

/** What a request needs of the session it goes out on; the connection adds the rest of `LiveSession`. */
export type HeldForRequests = Pick<LiveSession, 'client' | 'modern' | 'processKey' | 'protocolVersion' | 'capabilities'>;

/**
 * The upstream session a connection holds, if any, and what the last one told it. Its wire,
 * protocol and capabilities stay known (and reported) while the connection is down; its client,
 * transport and instructions go with it.
 */
export class HeldSession {
  #client: Client | undefined;
  #transport: Transport | undefined;
  #wire: UpstreamStatus['wire'];
  /** A stdio session's child process (`minted-values.ts`): new with each one spawned. */
  #processKey: string | undefined;
  #protocol: NegotiatedProtocol | undefined;
  #capabilities: ServerCapabilities | undefined;
  #instructions: string | undefined;

  get client(): Client | undefined {
    return this.#client;
  }

  get capabilities(): ServerCapabilities | undefined {
    return this.#capabilities;
  }

  /** The protocol era and version of the last session (2026-07-28 is `modern`); undefined before the first. */
  get protocol(): NegotiatedProtocol | undefined {
    return this.#protocol;
  }

  /** What the server's initialize result told its clients about using it; set once the session is ready. */
  get instructions(): string | undefined {
    return this.#instructions;
  }

  /** Whether `client` is the session's (a callback of an older one is ignored). */
  holds(client: Client): boolean {
    return client === this.#client;
  }

  /**
   * Holds a session just opened: `onClosed` runs when its client closes, and a 2026-07-28 one
   * takes task handles through as results (`task-results.ts`).
   */
  take(opened: OpenedClient, onClosed: () => void): void {
    this.#client = opened.client;
    this.#transport = opened.transport;
    this.#wire = opened.wire;
    this.#processKey = opened.wire === 'stdio' ? newProcessKey() : undefined;
    this.#protocol = opened.protocol;
    this.#capabilities = opened.client.getServerCapabilities();
    opened.client.onclose = onClosed;
    if (opened.protocol.era === 'modern') carryTaskHandles(opened.transport);
  }

  /** The session is ready: its instructions are read now, so that a server that is not ready has none. */
  ready(): void {
    this.#instructions = this.#client?.getInstructions();
  }

  /** Lets go of the session; returns its client and transport, to close, if there was one. */
  release(): { client: Client; transport: Transport | undefined } | undefined {
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    this.#instructions = undefined;
    return client && { client, transport };
  }

  /** How the session's transport ended, when it can tell (a stdio child's exit and the stderr line that explains it). */
  exitReason(): string | undefined {
    return (this.#transport as { describeExit?: () => string | undefined } | undefined)?.describeExit?.();
  }

  /** The held session as a request uses it; undefined while none is held. */
  forRequests(): HeldForRequests | undefined {
    const client = this.#client;
    if (!client) return undefined;
    return {
      client,
      modern: this.#protocol?.era === 'modern',
      processKey: this.#processKey,
      protocolVersion: this.#protocol?.version,
      capabilities: this.#capabilities,
    };
  }

  /** The part of `UpstreamStatus` the session tells. */
  status(): Pick<UpstreamStatus, 'wire' | 'pid' | 'protocol'> {
    return { wire: this.#wire, pid: (this.#transport as { pid?: number } | undefined)?.pid, protocol: this.#protocol };
  }
}

import type { Client, LoggingLevel } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { NegotiatedProtocol } from './era-negotiation.js';

/** The upstream session that replaces a lost one. */
export interface ReplacementSession {
  client: Client;
  protocol: NegotiatedProtocol;
}

/**
 * What a connection keeps across its upstream sessions. A new 2025 session starts at the
 * server's own log level and subscribed to nothing, so it is asked for the level and the
 * resource subscriptions its predecessor had. A 2026-07-28 session needs neither: a log level
 * travels with each request, and subscriptions are its change stream's filter (`change-stream.ts`).
 */
export class SessionCarryOver {
  /** The level the gateway last asked a session of this upstream to log at. */
  #logLevel: LoggingLevel | undefined;
  /**
   * Resources subscribed to, kept across reconnects. On a 2026-07-28 upstream, which has no
   * `resources/subscribe`, they are part of its stream's filter; a 2025 one is asked again for
   * each when a new session opens (its old one's subscriptions ended with it).
   */
  readonly subscriptions = new Set<string>();

  constructor(
    private readonly options: {
      /** False for a replica of a server with `urls`: its server decides where each subscription goes (`replica-subscriptions.ts`). */
      resubscribes: boolean;
      logger: Logger;
    },
  ) {}

  rememberLogLevel(level: LoggingLevel): void {
    this.#logLevel = level;
  }

  /** Keeps what a 2025 upstream answered to `resources/subscribe` and `resources/unsubscribe`, for its next session. */
  answered(method: string, uri: unknown): void {
    if (typeof uri !== 'string' || !this.options.resubscribes) return;
    if (method === 'resources/subscribe') this.subscriptions.add(uri);
    else if (method === 'resources/unsubscribe') this.subscriptions.delete(uri);
  }

  /**
   * Forgets a resource the upstream is asked to unsubscribe from, before it answers: the client
   * let go of it even when the upstream, down, never hears of it. A later 2025 session must not
   * be subscribed to it again, nor a later 2026-07-28 change stream listen for it.
   */
  unsubscribing(uri: unknown): void {
    if (typeof uri === 'string') this.subscriptions.delete(uri);
  }

  /**
   * Asks a new 2025 session for the log level (when it logs) and the subscriptions of the one
   * before, in the background; nothing is sent once `current()` no longer holds.
   */
  restore(session: ReplacementSession, current: () => boolean, timeoutMs: number): void {
    if (session.protocol.era === 'modern') return;
    const { logger } = this.options;
    const level = this.#logLevel;
    if (level !== undefined && session.client.getServerCapabilities()?.logging) {
      void bestEffort(
        async () => {
          if (current()) await session.client.setLoggingLevel(level, { timeout: timeoutMs });
        },
        logger,
        `set the log level of the new upstream session to ${level}`,
      );
    }
    for (const uri of this.subscriptions) {
      void bestEffort(
        async () => {
          if (current()) await session.client.subscribeResource({ uri }, { timeout: timeoutMs });
        },
        logger,
        `subscribe the new upstream session to ${uri} again`,
      );
    }
  }
}

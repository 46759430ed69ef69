import type { Logger } from 'pino';
import { z } from 'zod';
import { bestEffort } from '../../observability/best-effort.js';
import type { BusRpc } from '../../state/bus-rpc.js';

/** A user's tokens for a server, stored (authorised, handed in) or revoked through one replica. */
export const UserTokenChange = z.object({ user: z.string(), server: z.string(), change: z.enum(['stored', 'revoked']) });
export type UserTokenChange = z.infer<typeof UserTokenChange>;

/**
 * How replicas tell each other about users' tokens. Each keeps what it read of the database
 * for a few seconds, and holds per-user instances with the tokens in them: without this, a
 * revocation through one replica would leave the user's instance on another serving calls with
 * the revoked token, and a user who just authorised would be asked again on another replica.
 */
export interface TokenChangePeers {
  announce(change: UserTokenChange): void;
  /** Hears the other replicas' changes; returns the stop. */
  listen(listener: (change: UserTokenChange) => void): () => void;
}

const TOPIC = 'user-tokens.changed';

/** The other replicas over the replica bus; what arrives is checked (anything with access to Redis can publish). */
export function tokenChangePeers(rpc: BusRpc, logger: Logger): TokenChangePeers {
  return {
    announce: (change) => void bestEffort(() => rpc.broadcast(TOPIC, change), logger, "tell the other replicas that a user's tokens changed"),
    listen: (listener) =>
      rpc.on(TOPIC, (payload) => {
        const change = UserTokenChange.safeParse(payload);
        if (change.success) listener(change.data);
        else logger.warn({ topic: TOPIC }, 'ignored a token change that does not fit its schema');
      }),
  };
}

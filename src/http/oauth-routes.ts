import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { ReplicaUnreachableError, type BusRpc } from '../state/bus-rpc.js';
import { BINDING_COOKIE_PREFIX, holderNamed } from '../upstream/auth/pending-authorizations.js';
import { OAUTH_CALLBACK_PATH, OAUTH_START_PATH, type UserIdentities } from '../upstream/auth/user-identity.js';
import { mountOAuthCallback, page, pageHeaders } from './oauth-callback.js';
import { mountOAuthStart } from './oauth-start.js';
import { ReplicaForwarding } from './replica-forwarding.js';

/** The bus topic of start links and callbacks received by a replica that does not hold their authorization. */
const TOPIC = 'oauth-browser';
/**
 * How long the holder may take to answer: a callback redeems its code at the authorization
 * server, after a discovery at worst, each request bounded to 30 s (`oauth-fetch.ts`). A holder
 * that is gone is known at once (nobody takes the message); this only bounds a holder that hangs.
 */
const FORWARD_TIMEOUT_MS = 100_000;

export interface UserAuthorizationRoutesDeps {
  rpc: BusRpc;
  /** This replica's id, as its authorizations' handles and states name it. */
  replicaId: string;
  logger: Logger;
}

/**
 * Mounts the routes a user's browser takes through an authorization (`/oauth/start/<handle>`,
 * `/oauth/callback`), on any replica. The authorization's record stays in the memory of the
 * replica that started it, whose id its handle and state name; another replica receiving either
 * request hands it over the replica bus to that one, whose routes answer it (their guards
 * already passed here), and answers with what it answered: its page, its redirect, its cookies.
 * Only the browser's authorization cookies go along: the binding is checked by the holder,
 * exactly as when the browser reaches it.
 *
 * Why not shared records (Redis): the callback's work needs the starting replica anyway (the
 * calls waiting for the outcome, the per-user connection it starts), and a record holds the PKCE
 * verifier, which would then need sealing at rest. Forwarding keeps every secret where it was
 * made and each request a single round trip. A holder that is gone (restarted, stopped) answers
 * nothing: the browser is told its authorization is no longer pending, as for an unknown one.
 * This replica stops answering for the others when `rpc` closes.
 */
export function mountUserAuthorizationRoutes<E extends object>(app: Hono<E>, users: UserIdentities, deps: UserAuthorizationRoutesDeps): void {
  const routes = new Hono();
  mountOAuthStart(routes, users, deps.logger);
  mountOAuthCallback(routes, users, deps.logger);
  const forwarding = new ReplicaForwarding({
    rpc: deps.rpc,
    topic: TOPIC,
    answer: (request) => routes.fetch(request),
    headers: authorizationCookies,
    timeoutMs: FORWARD_TIMEOUT_MS,
    logger: deps.logger,
  });

  const toHolder = (reference: (c: Context) => string | undefined): MiddlewareHandler => async (c, next) => {
    const named = c.req.method === 'GET' ? reference(c) : undefined;
    const holder = named === undefined ? undefined : holderNamed(named);
    if (holder === undefined || holder === deps.replicaId) return next();
    try {
      return await forwarding.forward(holder, c.req.raw);
    } catch (error) {
      pageHeaders(c);
      if (error instanceof ReplicaUnreachableError) {
        deps.logger.info({ holder, err: error.message }, 'a link or callback named an authorization held by a replica that did not answer');
        return c.html(page('Authorization no longer pending', 'This authorization is no longer pending: the gateway that started it has restarted or stopped. Call the tool again for a new link.'), 400);
      }
      // The bus itself failed (Redis does not answer), or the holder could not take the request.
      deps.logger.warn({ holder, err: error }, 'a link or callback could not be handed to the replica holding its authorization');
      return c.html(page('Authorization not reached', 'The gateway could not reach this authorization just now. Try the same link again in a moment.'), 503);
    }
  };
  app.use(`${OAUTH_START_PATH}/:handle`, toHolder((c) => c.req.param('handle')));
  app.use(OAUTH_CALLBACK_PATH, toHolder((c) => c.req.query('state')));
  app.route('/', routes);
}

/** The browser's cookies the routes read (the confirmation page's and the binding's), and no other. */
function authorizationCookies(request: Request): Record<string, string> {
  const ours = (request.headers.get('cookie') ?? '')
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(BINDING_COOKIE_PREFIX));
  return ours.length > 0 ? { cookie: ours.join('; ') } : {};
}

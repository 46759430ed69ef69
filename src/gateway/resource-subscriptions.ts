import type { Logger } from 'pino';
import type { ResourceRoute } from '../catalog/resource-catalog.js';
import { isPerUser } from '../upstream/auth/upstream-auth.js';
import { UpstreamUnavailableError } from '../upstream/errors.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { DownstreamSession } from './session-registry.js';
import { bestEffort } from '../observability/best-effort.js';

/**
 * Resource subscriptions of all sessions over the shared upstream connections: an upstream is
 * subscribed once per URI however many sessions ask, and unsubscribed when the last one leaves.
 * A server that acts for each user is subscribed on each user's own instance, for that user's
 * sessions; a subscription is use of that instance, which is not stopped for idleness while one
 * is held (it would stop sending updates, and nobody would know).
 *
 * Subscribes and unsubscribes of one upstream URI run one after another: the upstream answers
 * asynchronously, and two sessions subscribing at once must not both see "nobody yet" (the
 * upstream would get two subscribes and never be unsubscribed).
 */
export class ResourceSubscriptions {
  /** Upstream URI → the (session, exposed URI) pairs holding its subscription. */
  readonly #holders = new Map<string, Set<string>>();
  /** Upstream URI → what keeps the user's instance it is subscribed on from being reaped (released with the last holder). */
  readonly #holds = new Map<string, () => void>();
  /** Upstream URI → the end of its queue of subscription changes. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #upstreams: UpstreamPool;
  readonly #logger: Logger;

  constructor(upstreams: UpstreamPool, logger: Logger) {
    this.#upstreams = upstreams;
    this.#logger = logger;
  }

  /** Subscribes `session` to `exposedUri`; the upstream is asked only by the first holder. */
  async subscribe(session: DownstreamSession, exposedUri: string, route: ResourceRoute): Promise<void> {
    const key = this.#keyOf(route, session);
    const holder = holderOf(session, exposedUri);
    // The same exposed URI now leads elsewhere (the catalog changed): the old hold is given up.
    const previous = session.subscriptions.get(exposedUri);
    if (previous !== undefined && this.#keyOf(previous, session) !== key) void bestEffort(this.#leave(session, exposedUri, previous), this.#logger, 'give up a subscription over an old route');
    // Recorded at once, so that an unsubscribe (or the session ending) while this waits in the
    // queue finds the route and queues behind it.
    session.subscriptions.set(exposedUri, route);
    await this.#serialised(key, async () => {
      // Unsubscribed, or subscribed again over another route, while this waited.
      if (session.subscriptions.get(exposedUri) !== route) return;
      const holders = this.#holders.get(key) ?? new Set<string>();
      if (holders.has(holder)) return;
      if (holders.size === 0) {
        try {
          const upstream = await this.#upstream(route, session);
          await upstream.request('resources/subscribe', { uri: route.originalUri });
          if (this.#perUser(route.server)) this.#holds.set(key, this.#upstreams.hold(upstream));
        } catch (error) {
          if (session.subscriptions.get(exposedUri) === route) session.subscriptions.delete(exposedUri);
          throw error;
        }
      }
      holders.add(holder);
      this.#holders.set(key, holders);
    });
  }

  /** Unsubscribes `session` from `exposedUri`; the upstream is told when the last holder leaves. */
  async unsubscribe(session: DownstreamSession, exposedUri: string): Promise<void> {
    const route = session.subscriptions.get(exposedUri);
    if (!route) return;
    session.subscriptions.delete(exposedUri);
    await this.#leave(session, exposedUri, route);
  }

  /** Gives up `session`'s hold on `route`'s upstream URI, unsubscribing the upstream when it was the last. */
  #leave(session: DownstreamSession, exposedUri: string, route: ResourceRoute): Promise<void> {
    const key = this.#keyOf(route, session);
    const holder = holderOf(session, exposedUri);
    return this.#serialised(key, async () => {
      const holders = this.#holders.get(key);
      // Its subscribe failed or was overtaken: it holds nothing.
      if (!holders?.delete(holder) || holders.size > 0) return;
      this.#holders.delete(key);
      this.#holds.get(key)?.();
      this.#holds.delete(key);
      // A user's instance is not started only to be unsubscribed.
      const upstream = this.#perUser(route.server) ? this.#upstreams.running(route.server, session.principal) : this.#upstreams.get(route.server);
      // The upstream may be gone; nothing is left to undo.
      if (upstream) await bestEffort(() => upstream.request('resources/unsubscribe', { uri: route.originalUri }), this.#logger, `unsubscribe from ${route.originalUri} on "${route.server}"`);
    });
  }

  /** Drops every subscription of a session that ended. */
  async release(session: DownstreamSession): Promise<void> {
    await Promise.all([...session.subscriptions.keys()].map((uri) => this.unsubscribe(session, uri)));
  }

  /** Runs `work` after every change already queued for `key`; a failure does not stop the queue. */
  async #serialised(key: string, work: () => Promise<void>): Promise<void> {
    const result = (this.#queues.get(key) ?? Promise.resolve()).then(work);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.#queues.set(key, tail);
    void tail.then(() => {
      if (this.#queues.get(key) === tail) this.#queues.delete(key);
    });
    await result;
  }

  async #upstream(route: ResourceRoute, session: DownstreamSession) {
    const upstream = this.#upstreams.get(route.server);
    if (!upstream) throw new UpstreamUnavailableError(route.server, 'it is not configured');
    return this.#perUser(route.server) ? this.#upstreams.forCaller(route.server, { principal: session.access.principal }) : upstream;
  }

  /** One upstream subscription per URI: on a shared connection for everyone, on a user's instance for that user. */
  #keyOf(route: ResourceRoute, session: DownstreamSession): string {
    const shared = `${route.server}\0${route.originalUri}`;
    return this.#perUser(route.server) ? `${shared}\0${session.principal}` : shared;
  }

  #perUser(server: string): boolean {
    const config = this.#upstreams.get(server)?.config;
    return config !== undefined && isPerUser(config);
  }
}

function holderOf(session: DownstreamSession, exposedUri: string): string {
  return `${session.id}\0${exposedUri}`;
}

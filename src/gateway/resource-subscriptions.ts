import type { Logger } from 'pino';
import type { ResourceRoute } from '../catalog/resource-catalog.js';
import { UpstreamUnavailableError } from '../upstream/errors.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { DownstreamSession } from './session-registry.js';
import { bestEffort } from '../observability/best-effort.js';

/**
 * Resource subscriptions of all sessions over the shared upstream connections: an upstream is
 * subscribed once per URI however many sessions ask, and unsubscribed when the last one leaves.
 */
export class ResourceSubscriptions {
  readonly #counts = new Map<string, number>();
  readonly #upstreams: UpstreamPool;
  readonly #logger: Logger;

  constructor(upstreams: UpstreamPool, logger: Logger) {
    this.#upstreams = upstreams;
    this.#logger = logger;
  }

  async subscribe(session: DownstreamSession, exposedUri: string, route: ResourceRoute): Promise<void> {
    if (session.subscriptions.has(exposedUri)) return;
    const key = keyOf(route);
    const count = this.#counts.get(key) ?? 0;
    if (count === 0) await this.#upstream(route).request('resources/subscribe', { uri: route.originalUri });
    this.#counts.set(key, count + 1);
    session.subscriptions.set(exposedUri, route);
  }

  async unsubscribe(session: DownstreamSession, exposedUri: string): Promise<void> {
    const route = session.subscriptions.get(exposedUri);
    if (!route) return;
    session.subscriptions.delete(exposedUri);
    const key = keyOf(route);
    const count = (this.#counts.get(key) ?? 1) - 1;
    if (count > 0) {
      this.#counts.set(key, count);
      return;
    }
    this.#counts.delete(key);
    const upstream = this.#upstreams.get(route.server);
    // The upstream may be gone; nothing is left to undo.
    if (upstream) await bestEffort(() => upstream.request('resources/unsubscribe', { uri: route.originalUri }), this.#logger, `unsubscribe from ${route.originalUri} on "${route.server}"`);
  }

  /** Drops every subscription of a session that ended. */
  async release(session: DownstreamSession): Promise<void> {
    await Promise.all([...session.subscriptions.keys()].map((uri) => this.unsubscribe(session, uri)));
  }

  #upstream(route: ResourceRoute) {
    const upstream = this.#upstreams.get(route.server);
    if (!upstream) throw new UpstreamUnavailableError(route.server, 'it is not configured');
    return upstream;
  }
}

function keyOf(route: ResourceRoute): string {
  return `${route.server}\0${route.originalUri}`;
}

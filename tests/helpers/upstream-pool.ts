import { silentLogger } from '../../src/observability/logger.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { UpstreamPool, type UpstreamPoolDeps } from '../../src/upstream/upstream-pool.js';

/**
 * A pool with quick reconnects and no pings, whose upstreams' own requests and notifications
 * go nowhere: for a test of what drives the pool (the registry, changes heard from other
 * replicas) rather than of the upstreams. `deps` adds to or replaces what it is built with.
 */
export function testPool(deps: Partial<UpstreamPoolDeps> = {}): UpstreamPool {
  return new UpstreamPool({
    logger: silentLogger(),
    events: { onServerRequest: async () => ({}), onLogMessage: () => {}, onResourceUpdated: () => {} },
    groups: new ChildProcessGroups(),
    reconnect: { initialDelayMs: 100, maxDelayMs: 500, maxAttempts: 0 },
    health: { breaker: { failureThreshold: 5, cooldownMs: 1000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 },
    ...deps,
  });
}

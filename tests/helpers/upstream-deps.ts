import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { silentLogger } from '../../src/observability/logger.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import type { UpstreamDeps } from '../../src/upstream/upstream-connection.js';

/** Deps for an upstream connection driven directly, with quick retries and no pings. */
export function directDeps(overrides: Partial<UpstreamDeps> = {}): UpstreamDeps {
  return {
    logger: silentLogger(),
    events: { onServerRequest: async () => ({}), onLogMessage: () => {}, onResourceUpdated: () => {} },
    groups: new ChildProcessGroups(),
    reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 5 },
    health: { breaker: { failureThreshold: 3, cooldownMs: 30_000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 },
    onChange: () => {},
    ...overrides,
  };
}

/**
 * A debug logger (for `directDeps({ logger })`) that keeps every line it writes, as written, in
 * `lines`: for a test that searches all the text logged, such as for a secret that must not be there.
 */
export function loggerInto(lines: string[]): Logger {
  return pino({ level: 'debug' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
}

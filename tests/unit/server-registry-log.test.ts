import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ServerConfigSchema } from '../../src/config/schema.js';
import { ServerRegistry } from '../../src/registry/server-registry.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';

/** A server that never connects (disabled), so the pool applies it without any network. */
const server = (description: string) => ServerConfigSchema.parse({ url: 'http://127.0.0.1:9/mcp', enabled: false, description });

describe("the registry's log line for a change of servers", () => {
  it('names the servers whose catalog settings alone changed', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
    const pool = new UpstreamPool({
      logger,
      events: { onServerRequest: async () => ({}), onLogMessage: () => {}, onResourceUpdated: () => {} },
      groups: new ChildProcessGroups(),
      reconnect: { initialDelayMs: 100, maxDelayMs: 500, maxAttempts: 0 },
      health: { breaker: { failureThreshold: 5, cooldownMs: 1000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 },
    });
    const registry = new ServerRegistry({ upstreams: pool, logger, allowStdio: false });
    try {
      await registry.start({ docs: server('the docs'), kept: server('unchanged') });
      lines.length = 0;
      await registry.setConfigServers({ docs: server('the product docs'), kept: server('unchanged'), added: server('new') });
      const changes = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'upstream servers changed');
      expect(changes).toEqual([expect.objectContaining({ added: ['added'], removed: [], changed: [], updated: ['docs'] })]);

      lines.length = 0;
      await registry.setConfigServers({ docs: server('the docs again'), kept: server('unchanged'), added: server('new') });
      expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'upstream servers changed')).toEqual([
        expect.objectContaining({ added: [], removed: [], changed: [], updated: ['docs'] }),
      ]);
    } finally {
      await registry.close();
      await pool.stop();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { ServerConfigSchema } from '../../src/config/schema.js';
import { ServerRegistry } from '../../src/registry/server-registry.js';
import { capturedLog } from '../helpers/captured-log.js';
import { testPool } from '../helpers/upstream-pool.js';

/** A server that never connects (disabled), so the pool applies it without any network. */
const server = (description: string) => ServerConfigSchema.parse({ url: 'http://127.0.0.1:9/mcp', enabled: false, description });

describe("the registry's log line for a change of servers", () => {
  it('names the servers whose catalog settings alone changed', async () => {
    const { logger, lines } = capturedLog<{ msg: string }>('info');
    const pool = testPool({ logger });
    const registry = new ServerRegistry({ upstreams: pool, logger, allowStdio: false });
    const changes = () => lines.filter((entry) => entry.msg === 'upstream servers changed');
    try {
      await registry.start({ docs: server('the docs'), kept: server('unchanged') });
      lines.length = 0;
      await registry.setConfigServers({ docs: server('the product docs'), kept: server('unchanged'), added: server('new') });
      expect(changes()).toEqual([expect.objectContaining({ added: ['added'], removed: [], changed: [], updated: ['docs'] })]);

      lines.length = 0;
      await registry.setConfigServers({ docs: server('the docs again'), kept: server('unchanged'), added: server('new') });
      expect(changes()).toEqual([expect.objectContaining({ added: [], removed: [], changed: [], updated: ['docs'] })]);
    } finally {
      await registry.close();
      await pool.stop();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { StdioClientTransport } from '../../src/upstream/stdio-transport.js';

describe('a stdio transport closed while it starts', () => {
  it('spawns no child: its connection was stopped before the process could start', async () => {
    const groups = new ChildProcessGroups();
    const transport = new StdioClientTransport({ command: process.execPath, args: ['-e', 'setInterval(() => {}, 60000)'], env: {}, logger: silentLogger(), groups, exitGraceMs: 500 });
    try {
      // The command is looked up before the child is spawned: the close comes in between.
      const starting = transport.start();
      await transport.close();
      await expect(starting).rejects.toThrow(/was not started: its connection was closed/);
      expect(transport.pid).toBeUndefined();
    } finally {
      await transport.close();
      groups.killAll();
    }
  });
});

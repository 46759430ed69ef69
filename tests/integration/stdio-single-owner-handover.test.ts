import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { startGateway, waitFor, type RunningGateway as Gateway } from '../helpers/gateway.js';
import { lifetimes, MARKED_FIXTURE, runsSolo, soloEntry, soloServerConfig, untilRunsOn, withSoloPair } from '../helpers/single-owner.js';

/**
 * A `processes: one` stdio server whose process is replaced (a connection setting changed, a
 * restart) on the gateway running it: the old process has exited before the new one starts,
 * wherever that is, and the lease ends with the gateway that runs it. Each process marks its
 * start and exit in a file, and is slow to exit (as a server flushing its state is), so that
 * a new one started too early would be seen running beside it.
 */
const SLOW_EXIT_MS = 1000;
const LEASE = 'stdio:solo';

function soloConfig(markFile: string, env: Record<string, string> = {}) {
  return soloServerConfig({ args: [...nodeArgs(MARKED_FIXTURE), 'solo'], env: { MARK_FILE: markFile, SLOW_EXIT_MS: String(SLOW_EXIT_MS), ...env } });
}

describe('replacing the process of a processes: one server on the gateway running it', () => {
  it('after a connection setting changes there, the old process exits before any new one starts, and the lease is held by the gateway that runs it', () =>
    withSoloPair({ prefix: 'conflux-single-owner-', config: ({ markFile }) => soloConfig(markFile) }, async ({ markFile, hub, first, second, gateways }) => {
      await untilRunsOn(first, second, 'the first gateway to run the server');
      expect(lifetimes(markFile)).toEqual({ started: 1, running: 1, mostAtOnce: 1 });

      const changed = soloConfig(markFile, { SETTING: 'changed' }).servers;
      expect(await first.conflux.upstreams.apply(changed)).toMatchObject({ changed: ['solo'] });
      // Either gateway may have taken the lease the old entry let go of.
      await waitFor(() => gateways.some(runsSolo), 20_000, 'a gateway to run the server again');
      const runner = gateways.find(runsSolo)!;
      const other = gateways.find((g) => g !== runner)!;
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
      expect(await hub.leasesFor('onlooker').holder(LEASE)).toBe(runner.conflux.state.replicaId);
      expect(soloEntry(runner).holder).toBe(runner.conflux.state.replicaId);
      expect(soloEntry(other).running).toBeUndefined();
      await waitFor(() => soloEntry(other).holder === runner.conflux.state.replicaId, 20_000, 'the other gateway to learn where it runs');

      // The runner last, so that the other does not take the server over meanwhile.
      for (const g of [other, runner]) await g.stop();
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 0, mostAtOnce: 1 });
    }));

  it('a restart starts the new process once the old one has exited, though lease rounds pass meanwhile', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-single-owner-'));
    const markFile = join(folder, 'lifetimes');
    const hub = new MemoryHub();
    let gateway: Gateway | undefined;
    try {
      gateway = await startGateway(soloConfig(markFile), { state: new MemorySharedState(hub) });
      const alone = gateway;
      await waitFor(() => runsSolo(alone), 20_000, 'the gateway to run the server');
      const before = soloEntry(alone).status().pid;
      // The old process takes a few seconds to exit, over more than one lease round.
      await alone.conflux.upstreams.restart('solo');
      await waitFor(() => runsSolo(alone), 20_000, 'the new process');
      expect(soloEntry(alone).status().pid).not.toBe(before);
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
      expect(await hub.leasesFor('onlooker').holder(LEASE)).toBe(alone.conflux.state.replicaId);

      await alone.stop();
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 0, mostAtOnce: 1 });
    } finally {
      await gateway?.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

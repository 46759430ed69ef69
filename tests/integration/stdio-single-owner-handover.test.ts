import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { SingleOwnerServer } from '../../src/upstream/single-owner-server.js';
import { ROOT, startGateway, testConfig, waitFor, type RunningGateway as Gateway } from '../helpers/gateway.js';

/**
 * A `processes: one` stdio server whose process is replaced (a connection setting changed, a
 * restart) on the gateway running it: the old process has exited before the new one starts,
 * wherever that is, and the lease ends with the gateway that runs it. Each process marks its
 * start and exit in a file, and is slow to exit (as a server flushing its state is), so that
 * a new one started too early would be seen running beside it.
 */
const MARKED_FIXTURE = resolve(ROOT, 'tests/fixtures/lifetime-marked-stdio-server.ts');
const SLOW_EXIT_MS = 1000;
const LEASE = 'stdio:solo';

function soloConfig(markFile: string, env: Record<string, string> = {}) {
  const solo = {
    transport: 'stdio',
    command: process.execPath,
    args: ['--import', 'tsx', MARKED_FIXTURE, 'solo'],
    cwd: ROOT,
    env: { MARK_FILE: markFile, SLOW_EXIT_MS: String(SLOW_EXIT_MS), ...env },
    processes: 'one',
  };
  return testConfig({ solo });
}

/** What the mark file tells: how many processes started, how many are still running, and the most that ever ran at once. */
function lifetimes(markFile: string): { started: number; running: number; mostAtOnce: number } {
  let started = 0;
  let running = 0;
  let mostAtOnce = 0;
  for (const line of readFileSync(markFile, 'utf8').split('\n').filter(Boolean)) {
    if (line.startsWith('start ')) {
      started++;
      running++;
    } else {
      running--;
    }
    mostAtOnce = Math.max(mostAtOnce, running);
  }
  return { started, running, mostAtOnce };
}

const entryOf = (gateway: Gateway): SingleOwnerServer => {
  const entry = gateway.conflux.upstreams.get('solo');
  if (!(entry instanceof SingleOwnerServer)) throw new Error('solo is not a processes: one server');
  return entry;
};

/** Whether the gateway runs the server's process, ready. */
const runsIt = (gateway: Gateway): boolean => entryOf(gateway).running?.state === 'ready';

describe('replacing the process of a processes: one server on the gateway running it', () => {
  it('after a connection setting changes there, the old process exits before any new one starts, and the lease is held by the gateway that runs it', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-single-owner-'));
    const markFile = join(folder, 'lifetimes');
    const hub = new MemoryHub();
    const gateways: Gateway[] = [];
    try {
      for (let i = 0; i < 2; i++) gateways.push(await startGateway(soloConfig(markFile), { state: new MemorySharedState(hub) }));
      const [first, second] = gateways as [Gateway, Gateway];
      await waitFor(() => runsIt(first) && entryOf(second).holder === first.conflux.state.replicaId, 20_000, 'the first gateway to run the server');
      expect(lifetimes(markFile)).toEqual({ started: 1, running: 1, mostAtOnce: 1 });

      const changed = soloConfig(markFile, { SETTING: 'changed' }).servers;
      expect(await first.conflux.upstreams.apply(changed)).toMatchObject({ changed: ['solo'] });
      // Either gateway may have taken the lease the old entry let go of.
      await waitFor(() => gateways.some(runsIt), 20_000, 'a gateway to run the server again');
      const runner = gateways.find(runsIt)!;
      const other = gateways.find((g) => g !== runner)!;
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
      expect(await hub.leasesFor('onlooker').holder(LEASE)).toBe(runner.conflux.state.replicaId);
      expect(entryOf(runner).holder).toBe(runner.conflux.state.replicaId);
      expect(entryOf(other).running).toBeUndefined();
      await waitFor(() => entryOf(other).holder === runner.conflux.state.replicaId, 20_000, 'the other gateway to learn where it runs');

      for (const g of gateways) await g.stop();
      expect(lifetimes(markFile)).toEqual({ started: 2, running: 0, mostAtOnce: 1 });
    } finally {
      for (const g of gateways) await g.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('a restart starts the new process once the old one has exited, though lease rounds pass meanwhile', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'conflux-single-owner-'));
    const markFile = join(folder, 'lifetimes');
    const hub = new MemoryHub();
    let gateway: Gateway | undefined;
    try {
      gateway = await startGateway(soloConfig(markFile), { state: new MemorySharedState(hub) });
      const alone = gateway;
      await waitFor(() => runsIt(alone), 20_000, 'the gateway to run the server');
      const before = entryOf(alone).status().pid;
      // The old process takes a few seconds to exit, over more than one lease round.
      await alone.conflux.upstreams.restart('solo');
      await waitFor(() => runsIt(alone), 20_000, 'the new process');
      expect(entryOf(alone).status().pid).not.toBe(before);
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

import { describe, expect, it } from 'vitest';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { SharedStateUnavailableError, type LeaseStore, type SharedState } from '../../src/state/shared-state.js';
import { outcomeOf } from '../helpers/call-loop.js';
import { isAlive, waitFor } from '../helpers/gateway.js';
import { lifetimes, MARKED_FIXTURE, soloEntry, soloServerConfig, untilRunsOn, withSoloPair } from '../helpers/single-owner.js';
import { nodeArgs } from '../helpers/built-entries.js';

/**
 * A `processes: one` server whose definition changed on the gateway process running it: its old
 * process finishes the calls in flight on it before the new one starts. If that gateway loses
 * the lease meanwhile (its store out of reach), the old process is stopped as the running one
 * would be, within the lease's stop budget, and not once its calls have ended: another gateway
 * takes the lease when it runs out and starts the server there, never beside the old process.
 */

/** Slow to exit (seconds, see the fixture), with a request timeout long enough for the call left in flight. */
function soloConfig(markFile: string, generation: string) {
  return soloServerConfig({ args: [...nodeArgs(MARKED_FIXTURE), 'solo'], env: { MARK_FILE: markFile, SLOW_EXIT_MS: '1000', GENERATION: generation }, timeout: 120 });
}

/** `inner`, its lease store made not to answer while `reachable` is false, as a Redis that one gateway process can no longer reach. */
function withLeaseReach(inner: SharedState): { state: SharedState; reachable: boolean } {
  const reach = { reachable: true } as { state: SharedState; reachable: boolean };
  const guard =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      reach.reachable ? call(...args) : Promise.reject(new SharedStateUnavailableError('the store does not answer'));
  const leases: LeaseStore = {
    acquire: guard((name: string, ttlMs: number, keeper?: string) => inner.leases.acquire(name, ttlMs, keeper)),
    holder: guard((name: string) => inner.leases.holder(name)),
    release: guard((name: string, keeper?: string) => inner.leases.release(name, keeper)),
  };
  reach.state = {
    backend: inner.backend,
    replicaId: inner.replicaId,
    sessions: inner.sessions,
    bus: inner.bus,
    leases,
    eventsFor: (sessionId) => inner.eventsFor(sessionId),
    health: () => inner.health(),
    close: () => inner.close(),
  };
  return reach;
}

describe('a processes: one server whose old process is finishing its calls when its gateway process loses the lease', () => {
  it('stops the old process then, so that it has exited before another gateway process starts the server', async () => {
    const hub = new MemoryHub();
    const firstState = withLeaseReach(new MemorySharedState(hub));
    const config = ({ markFile }: { markFile: string }) => soloConfig(markFile, 'one');
    await withSoloPair({ prefix: 'conflux-single-owner-lease-', config, hub, firstState: firstState.state }, async ({ markFile, first, second, gateways, connect }) => {
      try {
        await untilRunsOn(first, second, 'the first gateway to run the server');
        const session = await connect(first);
        const oldPid = soloEntry(first).status().pid!;
        const oldProcess = soloEntry(first).running!;

        // Longer than the lease takes to run out and be taken elsewhere: the old process finishes it before it stops, unless the lease is lost.
        const inFlight = outcomeOf(session.client.callTool({ name: 'solo__sleep', arguments: { ms: 60_000 } }, undefined, { timeout: 120_000 }));
        await waitFor(async () => !(await oldProcess.drained(0)), 20_000, 'the call to be in flight on the old process');
        await Promise.all(gateways.map((g) => g.conflux.registry.setConfigServers(soloConfig(markFile, 'two').servers)));
        expect(isAlive(oldPid)).toBe(true);

        firstState.reachable = false;
        await waitFor(() => soloEntry(second).running?.state === 'ready', 60_000, 'the other gateway to take the lease and run the server');
        expect(lifetimes(markFile)).toEqual({ started: 2, running: 1, mostAtOnce: 1 });
        expect(isAlive(oldPid)).toBe(false);
        // The call on the old process ended with it.
        expect(await inFlight).toMatchObject({ isError: true });
      } finally {
        // Before the gateways stop: the first lets go of its lease as it would with its store in reach.
        firstState.reachable = true;
      }
    });
  });
});

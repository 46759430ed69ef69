import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { describe, expect, it } from 'vitest';
import { eachAnswered, eachAnsweredMore, outcomeOf } from '../helpers/call-loop.js';
import { ROOT, waitFor, type ConnectedClient } from '../helpers/gateway.js';
import { lifetimes, MARKED_FIXTURE, soloEntry, soloServerConfig, untilRunsOn, withSoloPair, type SoloPair } from '../helpers/single-owner.js';
import { nodeArgs } from '../helpers/built-entries.js';

/**
 * A `processes: one` server restarted while calls stream in through two gateway processes: the
 * one running it, and one sending it its calls over the replica bus. The lease stays where it
 * is, so the calls made while the old process exits wait for the new one there and are answered
 * by it: none fails because of the restart, and the two processes never run at once. A new
 * process that cannot start fails the calls waiting for it with its own reason.
 */
const REFUSING_FIXTURE = resolve(ROOT, 'tests/fixtures/refusing-stdio-server.ts');

/** Slow to exit (stdin closed, then SIGTERM 2 s later, then this): the restart's window is seconds wide. */
function markedConfig(markFile: string) {
  return soloServerConfig({ args: [...nodeArgs(MARKED_FIXTURE), 'solo'], env: { MARK_FILE: markFile, SLOW_EXIT_MS: '1000' } });
}

/** The file whose presence makes the refusing fixture refuse to start, in the test's folder. */
const refuseFileIn = (folder: string) => join(folder, 'refuse');

function refusingConfig(refuseFile: string) {
  return soloServerConfig({ args: [...nodeArgs(REFUSING_FIXTURE), 'solo'], env: { REFUSE_FILE: refuseFile } });
}

/** One call of `solo__pid`: its answer text, or its failure's (kept, so that the test reads it when it gets to it). */
function pidCall(client: Client): Promise<{ isError: boolean; text: string }> {
  return outcomeOf(client.callTool({ name: 'solo__pid', arguments: {} }));
}

/** Waits until the first gateway runs the server and the second knows it, its tools included, then connects a client to each. */
async function clientsOnceKnown({ first, second, connectEach }: SoloPair): Promise<readonly ConnectedClient[]> {
  await untilRunsOn(first, second, 'the first gateway to run the server, and the other to know it', { listed: true });
  return connectEach();
}

/** `values` with each run of equal neighbours kept once: the processes a loop was answered by, in order. */
function runsOf(values: readonly number[]): number[] {
  return values.filter((value, i) => i === 0 || values[i - 1] !== value);
}

describe('restarting a processes: one server while calls stream in through two gateway processes', () => {
  it('answers every call, those made during the restart by the new process, asked of either gateway, and never runs two processes', () =>
    withSoloPair({ prefix: 'conflux-single-owner-restart-', config: ({ markFile }) => markedConfig(markFile) }, async (pair) => {
      const { markFile, hub, first: holder, second: other, calling } = pair;
      const clients = await clientsOnceKnown(pair);
      const pids = [soloEntry(holder).status().pid!];
      const loops = clients.map((c) => calling.start(c.client, 'solo__pid'));
      await eachAnswered(loops, 3, 'calls before the restart');

      // First asked of the gateway that does not run it (which asks the one that does), then of the one that does.
      for (const restarter of [other, holder]) {
        const before = pids.at(-1)!;
        const restarted = restarter.conflux.upstreams.restart('solo');
        await waitFor(() => soloEntry(holder).status().pid !== before, 20_000, 'the old process to be stopping');
        // Made while the old process exits (seconds, see `markedConfig`): each waits for the new one.
        const during = clients.map((c) => pidCall(c.client));
        await restarted;
        await waitFor(() => soloEntry(holder).running?.state === 'ready', 30_000, 'the new process');
        const after = soloEntry(holder).status().pid!;
        expect(after).not.toBe(before);
        pids.push(after);
        expect(await Promise.all(during)).toEqual([
          { isError: false, text: String(after) },
          { isError: false, text: String(after) },
        ]);
        await waitFor(() => loops.every((l) => l.answers.at(-1) === String(after)), 30_000, 'calls through both gateways to reach the new process');
        await eachAnsweredMore(loops, 5, 'calls after the restart');
      }
      await Promise.all(loops.map((l) => l.stop()));

      expect(loops.map((l) => l.failures)).toEqual([[], []]);
      // Each gateway's calls were answered by each process in turn, never by one already replaced.
      expect(loops.map((l) => runsOf(l.answers.map(Number)))).toEqual([pids, pids]);
      expect(await hub.leasesFor('onlooker').holder('stdio:solo')).toBe(holder.conflux.state.replicaId);
      expect(lifetimes(markFile)).toEqual({ started: 3, running: 1, mostAtOnce: 1 });
    }));

  it('fails the calls waiting for a new process that cannot start with its reason', () =>
    withSoloPair({ prefix: 'conflux-single-owner-restart-', config: ({ folder }) => refusingConfig(refuseFileIn(folder)) }, async (pair) => {
      const { folder, hub, first: holder } = pair;
      const clients = await clientsOnceKnown(pair);
      for (const c of clients) expect(await pidCall(c.client)).toMatchObject({ isError: false });

      writeFileSync(refuseFileIn(folder), '');
      const restarted = holder.conflux.upstreams.restart('solo');
      const during = clients.map((c) => pidCall(c.client));
      await restarted;
      const answers = await Promise.all(during);
      expect(answers.map((a) => a.isError)).toEqual([true, true]);
      for (const { text } of answers) expect(text).toContain('refusing to start: another instance holds the lock');
      // The lease stays with the gateway that failed to start it: it keeps trying there.
      expect(await hub.leasesFor('onlooker').holder('stdio:solo')).toBe(holder.conflux.state.replicaId);
    }));
});

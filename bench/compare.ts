/**
 * Measures several targets of one workload (direct, a byte proxy, Conflux, peer gateways) so
 * that their figures can be set side by side on a shared, busy host: each target is warmed up
 * before anything is measured, and the measurements alternate between targets in rounds (the
 * second round in the reverse order, so a drift of the host's load weighs on all of them alike).
 * Each target keeps its best round.
 */
import { runLoad, type LoadResult } from './load.js';

export interface LoadClient {
  call: () => Promise<unknown>;
  close: () => Promise<void>;
}

export interface Target {
  name: string;
  /** Opens one simulated session (a client, its session, whatever the target needs). */
  open: () => Promise<LoadClient>;
  /** Targets that start a server process per session are opened one session at a time. */
  openOneAtATime?: boolean;
  /**
   * Called before its warm-up and before each of its measurements (to start a peer afresh);
   * each measurement of a target that has one is preceded by a warm-up of its own, so the
   * fresh process is measured warm like every other target.
   */
  prepare?: () => Promise<void>;
  /** The CPU time (ms) of the process that serves it, for its CPU per call. */
  cpu?: () => number;
}

export interface CompareOptions {
  concurrency: number[];
  rounds: number;
  /** Length of one measurement, after `settleSeconds` of calls on its freshly opened sessions. */
  seconds: number;
  settleSeconds: number;
  /** The warm-up of every target before the first measurement: `calls` calls, or `maxSeconds`, whichever comes first. */
  warmUp: { sessions: number; calls: number; maxSeconds: number };
}

export interface ComparedLevel {
  sessions: number;
  /** The best round of each target (the most calls per second). */
  best: Record<string, LoadResult>;
  /** Every round of each target, in the order measured. */
  rounds: Record<string, LoadResult[]>;
}

/** The round with the most calls per second. */
export function bestRound(results: readonly LoadResult[]): LoadResult {
  if (results.length === 0) throw new Error('no rounds to choose from');
  return results.reduce((best, r) => (r.callsPerSecond > best.callsPerSecond ? r : best));
}

/** The order targets are measured in, round by round: forwards, then backwards, and so on. */
export function roundOrder<T>(targets: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...targets] : [...targets].reverse();
}

/**
 * Calls every target from `sessions` sessions until `calls` calls have been answered (or
 * `maxSeconds` have passed), so the JIT, connection pools and caches of each are warm before
 * it is measured. A failing call fails the warm-up.
 */
export async function warmUp(target: Target, options: CompareOptions['warmUp']): Promise<number> {
  const clients: LoadClient[] = [];
  if (target.openOneAtATime) for (let i = 0; i < options.sessions; i++) clients.push(await target.open());
  else clients.push(...(await Promise.all(Array.from({ length: options.sessions }, () => target.open()))));
  const until = performance.now() + options.maxSeconds * 1000;
  let calls = 0;
  try {
    await Promise.all(
      clients.map(async (client) => {
        while (calls < options.calls && performance.now() < until) {
          await client.call();
          calls++;
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  return calls;
}

/**
 * Warms every target, then measures each at every concurrency level in alternating rounds. A
 * target that fails (its `prepare`, its warm-up, or opening its sessions) gets a round with
 * the error and no calls, and is left out of every later round, so that one broken peer does
 * not cost the others their figures.
 */
export async function compareTargets(targets: readonly Target[], options: CompareOptions): Promise<ComparedLevel[]> {
  const failed = new Map<string, string>();
  for (const target of targets) {
    try {
      await target.prepare?.();
      await warmUp(target, options.warmUp);
    } catch (error) {
      failed.set(target.name, `warm-up: ${(error as Error).message}`);
    }
  }
  const levels: ComparedLevel[] = [];
  for (const sessions of options.concurrency) {
    const rounds: Record<string, LoadResult[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (const target of roundOrder(targets, round)) {
        const earlier = failed.get(target.name);
        if (earlier !== undefined) {
          rounds[target.name]!.push(failure(earlier));
          continue;
        }
        try {
          rounds[target.name]!.push(await measure(target, sessions, options));
        } catch (error) {
          failed.set(target.name, (error as Error).message);
          rounds[target.name]!.push(failure((error as Error).message));
        }
      }
    }
    const best = Object.fromEntries(Object.entries(rounds).map(([name, results]) => [name, bestRound(results)]));
    levels.push({ sessions, best, rounds });
  }
  return levels;
}

async function measure(target: Target, sessions: number, options: CompareOptions): Promise<LoadResult> {
  if (target.prepare) {
    await target.prepare();
    await warmUp(target, options.warmUp);
  }
  return runLoad(sessions, options.seconds, options.settleSeconds, target.open, {
    openOneAtATime: target.openOneAtATime ?? false,
    ...(target.cpu ? { cpu: target.cpu } : {}),
  });
}

function failure(message: string): LoadResult {
  return { calls: 0, errors: 1, seconds: 0, callsPerSecond: 0, p50Ms: 0, p99Ms: 0, firstError: message };
}

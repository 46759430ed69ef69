import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../../src/config/schema.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { SharedState } from '../../src/state/shared-state.js';
import { SingleOwnerServer } from '../../src/upstream/single-owner-server.js';
import { CallLoops } from './call-loop.js';
import { connectClient, ROOT, startGateway, testConfig, waitFor, type ConnectedClient, type RunningGateway } from './gateway.js';

/**
 * Tests of a `processes: one` stdio server, `solo`, run by gateway processes that share one
 * state hub: whichever holds the lease `stdio:solo` runs it, the others send it their calls.
 */

/** The stdio fixture that marks each start and exit of its processes in the file `MARK_FILE` names. */
export const MARKED_FIXTURE = resolve(ROOT, 'tests/fixtures/lifetime-marked-stdio-server.ts');

/**
 * A config with the one stdio server `solo`, run as `node` with `server.args` (each test says how
 * its fixture starts) from the repository root, `processes: one` unless `server` says otherwise.
 */
export function soloServerConfig(server: { args: readonly string[]; env: Record<string, string> } & Record<string, unknown>): Config {
  return testConfig({ solo: { transport: 'stdio', command: process.execPath, cwd: ROOT, processes: 'one', ...server } });
}

/** `gateway`'s entry of `solo`. */
export function soloEntry(gateway: RunningGateway): SingleOwnerServer {
  const entry = gateway.conflux.upstreams.get('solo');
  if (!(entry instanceof SingleOwnerServer)) throw new Error('solo is not a processes: one server');
  return entry;
}

/** Whether `gateway` runs the server's process, ready. */
export function runsSolo(gateway: RunningGateway): boolean {
  return soloEntry(gateway).running?.state === 'ready';
}

/**
 * Waits until `runner` runs the server's process and `other` sees it hold the lease, and, with
 * `listed`, has the server's tools to list (what `other` answers calls with before then differs).
 */
export function untilRunsOn(runner: RunningGateway, other: RunningGateway, what: string, { listed = false } = {}): Promise<void> {
  return waitFor(() => runsSolo(runner) && soloEntry(other).holder === runner.conflux.state.replicaId && (!listed || soloEntry(other).tools.length > 0), 20_000, what);
}

export interface Lifetimes {
  started: number;
  running: number;
  /** The most processes that ever ran at once: more than one means a new one started too early. */
  mostAtOnce: number;
}

/** What the mark file tells: how many processes started, how many still run, and the most that ever ran at once. */
export function lifetimes(markFile: string): Lifetimes {
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

export interface SoloPair {
  /** A folder of the test's own, removed once it ends. */
  folder: string;
  /** Where the marked fixture's processes mark their starts and exits, in `folder`. */
  markFile: string;
  hub: MemoryHub;
  /** The gateway started first, so the first to take the lease. */
  first: RunningGateway;
  second: RunningGateway;
  gateways: readonly [RunningGateway, RunningGateway];
  /** Call loops, stopped before the clients close. */
  calling: CallLoops;
  /** Connects a client to `gateway`, closed once the test ends. */
  connect(gateway: RunningGateway): Promise<ConnectedClient>;
  /** Connects a client to each gateway, in order. */
  connectEach(): Promise<readonly ConnectedClient[]>;
}

export interface SoloPairOptions {
  /** How the folder's name starts. */
  prefix: string;
  /** The config both gateways start with. */
  config(files: { folder: string; markFile: string }): Config;
  /** The hub the gateways share. Default: a new one. */
  hub?: MemoryHub;
  /** The first gateway's state. Default: a state of its own on the hub, as the second gets. */
  firstState?: SharedState;
}

/**
 * Runs `test` against two gateways sharing one hub, started one after the other, and stops
 * whatever it started however it ends: call loops, then clients, then gateways.
 */
export async function withSoloPair(options: SoloPairOptions, test: (pair: SoloPair) => Promise<void>): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), options.prefix));
  const markFile = join(folder, 'lifetimes');
  const { hub = new MemoryHub(), firstState } = options;
  const started: RunningGateway[] = [];
  const clients: ConnectedClient[] = [];
  const calling = new CallLoops();
  try {
    for (let i = 0; i < 2; i++) {
      // A state joins the hub's bus when made: the second one's replica joins once the first gateway runs.
      const state = (i === 0 && firstState) || new MemorySharedState(hub);
      started.push(await startGateway(options.config({ folder, markFile }), { state }));
    }
    const gateways = started as [RunningGateway, RunningGateway];
    const connect = async (gateway: RunningGateway) => {
      const client = await connectClient(gateway.url);
      clients.push(client);
      return client;
    };
    const connectEach = async () => {
      for (const gateway of gateways) await connect(gateway);
      return clients;
    };
    await test({ folder, markFile, hub, first: gateways[0], second: gateways[1], gateways, calling, connect, connectEach });
  } finally {
    await calling.stopAll();
    await Promise.all(clients.map((c) => c.close()));
    for (const g of started) await g.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

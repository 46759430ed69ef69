import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeArgs } from './built-entries.js';
import { ROOT, waitFor } from './gateway.js';

/** Variables of the test's own environment that would change what `serve` does. */
const INHERITED_SETTINGS = ['REDIS_URL', 'DATABASE_URL', 'CONFLUX_WORKERS', 'CONFLUX_CONFIG', 'CONFLUX_HOST', 'CONFLUX_PORT', 'PORT', 'CONFLUX_DATA_DIR', 'LOG_LEVEL'];

export interface GatewayProcess {
  readonly pid: number;
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** What the gateway logged so far (JSON lines on stderr). */
  log(): string;
  /** Every process under the gateway now (workers, stdio upstreams, tsx's esbuild), remembered for `stop`. */
  descendants(): number[];
  /** SIGKILL; resolves once the process has exited (its descendants may still be going). */
  kill(): Promise<void>;
  /**
   * SIGTERM (SIGKILL if it has not exited after `graceMs`), then waits until the gateway and
   * every descendant it ever had are gone; throws, after killing them, if some outlive it.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * `conflux serve` as a child process on a free loopback port, once it listens and its upstreams
 * are ready: `listeners` "Conflux listening" and `upstreams` "upstream ready" log lines (one each
 * per worker with `CONFLUX_WORKERS`). `env` is all the gateway gets of settings: the test's own
 * `REDIS_URL`, `DATABASE_URL` and the like are not passed on.
 */
export async function startGatewayProcess(options: { config: string; env?: Record<string, string>; listeners?: number; upstreams?: number; timeoutMs?: number }): Promise<GatewayProcess> {
  const inherited = { ...process.env };
  for (const name of INHERITED_SETTINGS) delete inherited[name];
  const dataDir = await mkdtemp(join(tmpdir(), 'conflux-data-'));
  const child = spawn(process.execPath, [...nodeArgs('src/cli.ts'), 'serve', '-c', options.config, '-p', '0'], {
    cwd: ROOT,
    env: { ...inherited, LOG_LEVEL: 'info', CONFLUX_DATA_DIR: dataDir, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (chunk) => (log += chunk));
  child.stderr!.on('data', (chunk) => (log += chunk));
  const exited = once(child, 'exit').then(() => undefined);
  const pid = child.pid!;
  const seen = new Set<number>();
  const count = (message: string) => log.split('\n').filter((line) => line.includes(`"msg":"${message}`)).length;

  const gateway: GatewayProcess = {
    pid,
    url: '',
    base: '',
    log: () => log,
    descendants() {
      const now = descendantsOf(pid);
      for (const p of now) seen.add(p);
      return now;
    },
    async kill() {
      gateway.descendants();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 15_000) {
      gateway.descendants();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const forced = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(forced);
      }
      const all = [pid, ...seen];
      try {
        await waitFor(() => !all.some(running), 10_000, 'the gateway and its children to exit');
      } catch (error) {
        for (const p of all.filter(running)) process.kill(p, 'SIGKILL');
        throw error;
      }
    },
  };

  try {
    await waitFor(() => child.exitCode !== null || (count('Conflux listening on') >= (options.listeners ?? 1) && count('upstream ready') >= (options.upstreams ?? 1)), options.timeoutMs ?? 120_000, 'the gateway to listen with its upstreams ready');
  } catch (error) {
    await gateway.stop(0).catch(() => {});
    throw new Error(`${(error as Error).message}:\n${log.slice(-3000)}`, { cause: error });
  }
  if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}:\n${log.slice(-3000)}`);
  const url = /"msg":"Conflux listening on (http:[^"]+)"/.exec(log)![1]!;
  Object.assign(gateway, { url, base: url.replace(/\/mcp$/, '') });
  gateway.descendants();
  return gateway;
}

/** `pid`'s parent, from /proc (Linux); undefined once it is gone. */
export function parentOf(pid: number): number | undefined {
  return stat(pid)?.ppid;
}

/** Whether `pid` runs: a zombie, dead but not yet collected by its parent, does not. */
export function running(pid: number): boolean {
  const state = stat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** The processes under `pid` now, from /proc: children before grandchildren. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = stat(Number(entry))?.ppid;
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

/** The command line of `pid`, its arguments joined by spaces. */
export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

function stat(pid: number): { state: string; ppid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": the command name may hold spaces and parentheses.
  const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: state!, ppid: Number(ppid) };
}

/**
 * Peer gateways installed from npm (devDependencies), started as the bench measures them:
 *
 * - supergateway: stdio server behind stateful Streamable HTTP; one server process per session.
 * - mcp-proxy: stdio server behind Streamable HTTP; one server process shared by every session.
 * - mcp-hub: Streamable HTTP upstreams behind one endpoint that speaks only the older HTTP+SSE
 *   transport downstream.
 *
 * Each runs detached in a process group of its own, so `stop` ends the gateway and whatever
 * servers it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from './load.js';
import { ROOT } from './processes.js';
import { SseSession } from './sse-session.js';

export interface RunningPeer {
  url: string;
  /**
   * The id of its process group (its own pid): what to kill, synchronously, when the bench is
   * cut short before `stop` (`killGroup`).
   */
  group: number;
  /** A folder of its own (mcp-hub's config, logs and cache), removed by `stop`. */
  dir?: string;
  stop: () => Promise<void>;
}

/** Kills a peer's process group: the gateway and the server processes it started, at once. */
export function killGroup(group: number): void {
  try {
    process.kill(-group, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // ESRCH: already gone
  }
}

/** supergateway in front of `command` (argv of a stdio server), stateful Streamable HTTP at /mcp. */
export async function startSupergateway(command: string[]): Promise<RunningPeer> {
  const port = await freePort();
  const line = command.map((part) => (part.includes(' ') ? `"${part}"` : part)).join(' ');
  const entry = join(ROOT, 'node_modules/supergateway/dist/index.js');
  const child = spawnPeer([entry, '--stdio', line, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none'], ROOT);
  const url = `http://127.0.0.1:${port}/mcp`;
  return ready(child, url, 'supergateway', () => opensSession(url));
}

/** mcp-proxy in front of `command`, Streamable HTTP only (no SSE endpoint, no resumability store) at /mcp. */
export async function startMcpProxy(command: string[]): Promise<RunningPeer> {
  const port = await freePort();
  const entry = join(ROOT, 'node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs');
  const child = spawnPeer([entry, '--port', String(port), '--host', '127.0.0.1', '--server', 'stream', '--no-eventStore', '--', ...command], ROOT);
  const url = `http://127.0.0.1:${port}/mcp`;
  return ready(child, url, 'mcp-proxy', () => opensSession(url));
}

/** mcp-hub with one Streamable HTTP server named `echo`; its tools are exposed as `echo__<tool>` over HTTP+SSE at /mcp. */
export async function startMcpHub(upstreamUrl: string): Promise<RunningPeer> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-bench-hub-'));
  await writeFile(join(dir, 'servers.json'), JSON.stringify({ mcpServers: { echo: { url: upstreamUrl } } }));
  const port = await freePort();
  // Its logs and workspace cache go under HOME / XDG_STATE_HOME: kept in the run's directory.
  const child = spawnPeer([join(ROOT, 'node_modules/mcp-hub/dist/cli.js'), '--port', String(port), '--config', join(dir, 'servers.json')], dir, {
    HOME: dir,
    XDG_STATE_HOME: dir,
    XDG_CONFIG_HOME: dir,
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  return ready(
    child,
    url,
    'mcp-hub',
    async () => {
      const session = await SseSession.open(url).catch(() => undefined);
      const listed = await session?.call('tools/list', {}).catch(() => '');
      await session?.close();
      return listed?.includes('"echo__echo"') ?? false;
    },
    dir,
  );
}

function spawnPeer(args: string[], cwd: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, args, { cwd, stdio: 'ignore', detached: true, env: { ...process.env, ...env } });
}

async function opensSession(url: string): Promise<boolean> {
  const session = await Session.open(url).catch(() => undefined);
  await session?.close();
  return session !== undefined;
}

/**
 * Waits until `isUp` says the peer serves (30 s at most); on failure the peer is stopped. Its
 * `stop` kills its process group, then removes its folder, if it has one.
 */
async function ready(child: ChildProcess, url: string, name: string, isUp: () => Promise<boolean>, dir?: string): Promise<RunningPeer> {
  const group = child.pid!;
  const stop = async () => {
    killGroup(group);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  };
  const deadline = performance.now() + 30_000;
  while (!(await isUp())) {
    if (child.exitCode !== null || performance.now() > deadline) {
      await stop();
      throw new Error(`${name} did not start${child.exitCode !== null ? ` (exit ${child.exitCode})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, group, ...(dir !== undefined ? { dir } : {}), stop };
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

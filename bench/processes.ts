import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const ROOT = new URL('..', import.meta.url).pathname;

export interface Running {
  url: string;
  child: ChildProcess;
  /** What the process wrote to stderr before it was found listening (a gateway's start-up log). */
  startupLog: string;
  stop(): Promise<void>;
  /** Resident memory in KiB (Linux). */
  rssKib(): number;
  /** CPU time the process has used so far, user and system, all threads, in ms (Linux). */
  cpuMs(): number;
}

/** Linux reports a process's CPU time in clock ticks of 1/100 s (USER_HZ, `getconf CLK_TCK`). */
const MS_PER_TICK = 10;

/** User plus system CPU time of a process in ms, from /proc/PID/stat (fields 14 and 15). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The name in field 2 may hold spaces and parentheses: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
}

/**
 * Starts a process and waits for the URL it prints (a `listening URL` line on stdout, or the
 * gateway's JSON start-up log line on stderr). One that does not print it in time is killed:
 * the caller never gets it to stop.
 */
export function start(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Running> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not start in time`));
    }, timeoutMs);
    let stderr = '';
    const found = (url: string) => {
      clearTimeout(timer);
      resolve({
        url,
        child,
        startupLog: stderr,
        rssKib: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0),
        cpuMs: () => processCpuMs(child.pid!),
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return; // already exited
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(forced);
        },
      });
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^listening (http:\S+)/.exec(line);
      if (match) found(match[1]!);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr += `${line}\n`;
      const match = /"msg":"Conflux listening on (http:[^"]+)"/.exec(line);
      if (match) found(match[1]!);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

export const upstreams = (kind: 'http' | 'stdio', options: { endpoints?: number; tools?: number; delayMs?: number } = {}) => [
  '--import',
  'tsx',
  'bench/upstreams.ts',
  kind,
  '--endpoints',
  String(options.endpoints ?? 1),
  '--tools',
  String(options.tools ?? 1),
  '--delay-ms',
  String(options.delayMs ?? 0),
];

/** The lean upstream of workload 1b (bench/lean-upstream.ts): one endpoint, plain JSON answers, no SDK. */
export const LEAN_UPSTREAM = ['--import', 'tsx', 'bench/lean-upstream.ts'];

/** Waits until the gateway at `mcpUrl` answers 200 on `/ready`; resolves with the ms it took. */
export async function waitReady(mcpUrl: string, timeoutMs = 120_000): Promise<number> {
  const started = performance.now();
  const url = mcpUrl.replace(/\/mcp$/, '/ready');
  while (performance.now() - started < timeoutMs) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${url} not ready in time`);
}

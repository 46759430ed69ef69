import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname, uptime } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * Who holds an embedded data folder. PGlite keeps the database in the process's memory and
 * writes it back as it goes: two processes on one folder undo each other's writes and can
 * corrupt it, so exactly one process opens it, and the others find it here.
 */
const LockHolderSchema = z.object({
  pid: z.number().int().positive(),
  /** The holding process's start (ms since the epoch); tells a reused pid from the holder. */
  startedAt: z.number(),
  hostname: z.string(),
  acquiredAt: z.string(),
  /** Set by a serving gateway once it listens: where a local CLI reaches its admin API. */
  url: z.url().optional(),
  /** Unique per acquisition: a lock is released only by the one who took it. */
  token: z.string(),
});

export type LockHolder = z.infer<typeof LockHolderSchema>;

/** What `isStaleLock` needs to know about processes; real values come from `processProbe()`. */
export interface ProcessProbe {
  /** This machine's name: pids and start times say nothing about another machine's processes. */
  hostname: string;
  pid: number;
  startedAt: number;
  /** When the machine booted (ms since the epoch): nothing started before it is alive. */
  bootedAt: number;
  alive(pid: number): boolean;
  /** When a live process started (ms), where the platform says (Linux `/proc`). */
  startTimeOf(pid: number): number | undefined;
}

/** The embedded folder is held by another live process (or by this one, opened twice). */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly lockFile: string,
    readonly holder: LockHolder,
  ) {
    const by = holder.url ? `the Conflux gateway serving ${holder.url}` : 'a Conflux command, or a gateway not yet listening';
    super(
      `The data folder ${dataDir} is in use by process ${holder.pid} on ${holder.hostname} (${by}, since ${holder.acquiredAt}). ` +
        'Two processes on one embedded database lose each other\'s writes and can corrupt it: stop that process first, ' +
        `or use PostgreSQL (DATABASE_URL) to run several gateways. If process ${holder.pid} is not Conflux, delete ${lockFile}.`,
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly dataDir: string;
  /** The lock file: `<data folder>.lock`, beside the folder (PGlite wants the folder to itself). */
  readonly path: string;
  /** Records where this process serves its admin API, for CLI commands run meanwhile. */
  advertise(url: string): Promise<void>;
  /** Removes the lock if it is still ours. */
  release(): Promise<void>;
}

/**
 * Slack when comparing start times (boot time and `/proc` start times are second-precise): a
 * live pid that started later than this after the holder is another process that got the pid.
 */
const START_TIME_MARGIN_MS = 5000;
/** How long contention over a stale lock may last before we give up. */
const TAKEOVER_PATIENCE_MS = 5000;
const TAKEOVER_RETRY_MS = 20;
const ABANDONED_TAKEOVER_MS = 10_000;
const HALF_WRITTEN_MS = 2000;
/** Linux reports process start times in clock ticks; 100 per second on every mainstream architecture. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The lock file of an embedded data folder. */
export function lockFileOf(dataDir: string): string {
  return `${resolve(dataDir)}.lock`;
}

/**
 * Takes the folder's lock, creating the lock file exclusively (a complete file is linked into
 * place where the filesystem has hard links, so a reader never sees it half written). A lock left by a process that is gone is
 * taken over; a live holder's raises `DataDirLockedError`. The lock is dropped on `release()`
 * and, failing that, when the process exits.
 */
export async function acquireDataDirLock(dataDir: string, probe: ProcessProbe = processProbe()): Promise<DataDirLock> {
  const path = lockFileOf(dataDir);
  const holder: LockHolder = {
    pid: probe.pid,
    startedAt: probe.startedAt,
    hostname: probe.hostname,
    acquiredAt: new Date().toISOString(),
    token: randomBytes(12).toString('hex'),
  };
  const draft = `${path}.${holder.token}`;
  await writeFile(draft, JSON.stringify(holder), { mode: 0o600 });
  try {
    const deadline = Date.now() + TAKEOVER_PATIENCE_MS;
    while (Date.now() < deadline) {
      if (await linkExclusive(draft, path)) return heldLock(dataDir, path, holder);
      const text = await readText(path);
      if (text === undefined) continue; // released between our two steps
      const current = parseHolder(text);
      if (current && !isStaleLock(current, probe)) throw new DataDirLockedError(dataDir, path, current);
      if (!current && (await ageOf(path)) < HALF_WRITTEN_MS) {
        // Where hard links are unsupported the lock is written in place: give the writer time.
        await pause(TAKEOVER_RETRY_MS);
        continue;
      }
      await removeStaleLock(path, text, draft);
    }
    throw new Error(`could not take over the stale lock ${path}; delete it if no process uses ${dataDir}`);
  } finally {
    await unlink(draft).catch(() => {}); // a leftover draft is harmless (named by a one-off token) and this module has no logger
  }
}

/** The holder recorded in a folder's lock file, if there is one. */
export async function readDataDirLock(dataDir: string): Promise<LockHolder | undefined> {
  const text = await readText(lockFileOf(dataDir));
  return text === undefined ? undefined : parseHolder(text);
}

/** Whether a recorded holder is gone, so its lock may be taken over. Pure. */
export function isStaleLock(holder: LockHolder, probe: ProcessProbe): boolean {
  // Written on another machine (or container) sharing the folder: its process cannot be
  // looked up from here, and pid 1 in two containers is two processes. Never taken over.
  if (holder.hostname !== probe.hostname) return false;
  // Our own pid: this process holds it (opened twice) or a previous one with the same pid left
  // it, as a container's gateway restarted as pid 1 does after a SIGKILL.
  if (holder.pid === probe.pid) return holder.startedAt !== probe.startedAt;
  if (holder.startedAt + START_TIME_MARGIN_MS < probe.bootedAt) return true;
  if (!probe.alive(holder.pid)) return true;
  const started = probe.startTimeOf(holder.pid);
  return started !== undefined && started > holder.startedAt + START_TIME_MARGIN_MS;
}

/** The URL a CLI on this machine reaches a gateway bound to `host:port` at (a loopback one for wildcards). */
export function localUrlOf(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** This process and machine, as the operating system reports them. */
export function processProbe(): ProcessProbe {
  return {
    hostname: hostname(),
    pid: process.pid,
    startedAt: Math.round(performance.timeOrigin),
    bootedAt: Date.now() - uptime() * 1000,
    alive: (pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
      }
    },
    startTimeOf: linuxStartTime,
  };
}

function heldLock(dataDir: string, path: string, holder: LockHolder): DataDirLock {
  let current = holder;
  const ours = (text: string | undefined) => text !== undefined && parseHolder(text)?.token === holder.token;
  const releaseAtExit = () => {
    try {
      if (ours(readFileSync(path, 'utf8'))) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.on('exit', releaseAtExit);
  return {
    dataDir,
    path,
    async advertise(url) {
      current = { ...current, url };
      const draft = `${path}.${holder.token}.url`;
      await writeFile(draft, JSON.stringify(current), { mode: 0o600 });
      await rename(draft, path); // replaced whole: readers see the old record or the new one
    },
    async release() {
      process.off('exit', releaseAtExit);
      if (ours(await readText(path))) await unlink(path).catch(() => {}); // a racing takeover may have removed it; this module has no logger
    },
  };
}

/**
 * Removes a lock judged stale, if it is still the same file. Takeovers are serialised by a
 * second exclusive file: without it, one process could remove the lock another had just taken
 * over, and both would open the folder.
 */
async function removeStaleLock(path: string, judged: string, draft: string): Promise<void> {
  const takeover = `${path}.takeover`;
  if (!(await linkExclusive(draft, takeover))) {
    // Another process is taking over (for milliseconds); one that died doing so left this behind.
    if ((await ageOf(takeover)) > ABANDONED_TAKEOVER_MS) await unlink(takeover).catch(() => {}); // another process may clear it first
    await pause(TAKEOVER_RETRY_MS);
    return;
  }
  try {
    // Only a takeover replaces a lock file, and we hold the only takeover: reading then removing is safe.
    if ((await readText(path)) === judged) await unlink(path).catch(() => {}); // a missing file is the outcome wanted
  } finally {
    await unlink(takeover).catch(() => {}); // a missing file is the outcome wanted
  }
}

/** Puts `from`'s content at `to` unless `to` exists, whole (a hard link) where the filesystem allows. */
async function linkExclusive(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
  }
  try {
    await writeFile(to, await readFile(from), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Milliseconds since the file was written; 0 when it is gone. */
async function ageOf(path: string): Promise<number> {
  return stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const parsed = LockHolderSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function linuxStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; the start time is field 22 of the whole line.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    return (btime + ticks / CLOCK_TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  acquireDataDirLock,
  DataDirLockedError,
  isStaleLock,
  localUrlOf,
  lockFileOf,
  processProbe,
  readDataDirLock,
  type LockHolder,
  type ProcessProbe,
} from '../../src/store/data-dir-lock.js';

const NOW = Date.UTC(2026, 0, 10, 12);

/** A machine where `others` are the live pids, started when given. */
function probe(pid: number, startedAt: number, others: Record<number, number | undefined> = {}): ProcessProbe {
  return {
    hostname: 'h',
    pid,
    startedAt,
    bootedAt: NOW - 86_400_000,
    alive: (p) => p === pid || p in others,
    startTimeOf: (p) => (p === pid ? startedAt : others[p]),
  };
}

const holder = (pid: number, startedAt: number): LockHolder => ({ pid, startedAt, hostname: 'h', acquiredAt: new Date(startedAt).toISOString(), token: 't' });

async function folder(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'conflux-lock-')), 'pgdata');
}

describe('isStaleLock', () => {
  it('keeps a live holder whose start time matches, and a holder where start times are unknown', () => {
    expect(isStaleLock(holder(200, NOW - 60_000), probe(100, NOW, { 200: NOW - 60_000 }))).toBe(false);
    expect(isStaleLock(holder(200, NOW - 60_000), probe(100, NOW, { 200: undefined }))).toBe(false);
  });

  it('takes over the lock of a dead pid', () => {
    expect(isStaleLock(holder(200, NOW - 60_000), probe(100, NOW))).toBe(true);
  });

  it('takes over a lock whose pid now belongs to a process started after the holder', () => {
    expect(isStaleLock(holder(200, NOW - 3_600_000), probe(100, NOW, { 200: NOW - 60_000 }))).toBe(true);
  });

  it('takes over a lock written before the machine booted', () => {
    expect(isStaleLock(holder(200, NOW - 2 * 86_400_000), probe(100, NOW, { 200: undefined }))).toBe(true);
  });

  it('never takes over a lock written on another machine or container, whatever its pid', () => {
    const elsewhere = { ...holder(1, NOW - 600_000), hostname: 'other-container' };
    expect(isStaleLock(elsewhere, probe(1, NOW))).toBe(false);
    expect(isStaleLock({ ...holder(200, NOW - 60_000), hostname: 'other-container' }, probe(100, NOW))).toBe(false);
  });

  it('on its own pid: held when it is this process, stale when an earlier process had the pid', () => {
    expect(isStaleLock(holder(1, NOW), probe(1, NOW))).toBe(false);
    expect(isStaleLock(holder(1, NOW - 600_000), probe(1, NOW))).toBe(true);
  });
});

describe('data folder lock', () => {
  it('refuses a second holder naming the folder and the pid, and is free again once released', async () => {
    const dataDir = await folder();
    const lock = await acquireDataDirLock(dataDir);
    try {
      const refused = await acquireDataDirLock(dataDir).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(DataDirLockedError);
      expect((refused as DataDirLockedError).holder.pid).toBe(process.pid);
      expect((refused as Error).message).toContain(`The data folder ${dataDir} is in use by process ${process.pid}`);
      expect((refused as Error).message).toContain(lockFileOf(dataDir));
    } finally {
      await lock.release();
    }
    expect(await readDataDirLock(dataDir)).toBeUndefined();
    const again = await acquireDataDirLock(dataDir);
    await again.release();
    // no drafts are left beside the lock
    expect((await readdir(join(dataDir, '..'))).filter((name) => name.startsWith('pgdata'))).toEqual([]);
  });

  it('records the admin URL for other processes to read', async () => {
    const dataDir = await folder();
    const lock = await acquireDataDirLock(dataDir);
    try {
      expect((await readDataDirLock(dataDir))?.url).toBeUndefined();
      await lock.advertise('http://127.0.0.1:4100');
      expect(await readDataDirLock(dataDir)).toMatchObject({ pid: process.pid, url: 'http://127.0.0.1:4100' });
      const refused = (await acquireDataDirLock(dataDir).catch((error: unknown) => error)) as DataDirLockedError;
      expect(refused.holder.url).toBe('http://127.0.0.1:4100');
      expect(refused.message).toContain('the Conflux gateway serving http://127.0.0.1:4100');
    } finally {
      await lock.release();
    }
  });

  it('takes over a stale lock, and the former holder no longer removes it', async () => {
    const dataDir = await folder();
    const stale = await acquireDataDirLock(dataDir, probe(4242, NOW - 600_000));
    // As seen from another process: pid 4242 is gone.
    const lock = await acquireDataDirLock(dataDir, probe(4343, NOW));
    try {
      expect((await readDataDirLock(dataDir))?.pid).toBe(4343);
      await stale.release();
      expect((await readDataDirLock(dataDir))?.pid).toBe(4343);
    } finally {
      await lock.release();
    }
    expect(await readDataDirLock(dataDir)).toBeUndefined();
  });

  it('takes over a lock file that is not a lock record', async () => {
    const dataDir = await folder();
    await writeFile(lockFileOf(dataDir), 'not json');
    const aMinuteAgo = new Date(Date.now() - 60_000);
    await utimes(lockFileOf(dataDir), aMinuteAgo, aMinuteAgo); // not one being written now
    const lock = await acquireDataDirLock(dataDir);
    try {
      expect(JSON.parse(await readFile(lockFileOf(dataDir), 'utf8'))).toMatchObject({ pid: process.pid });
    } finally {
      await lock.release();
    }
  });

  it('of all the holders racing for a stale lock, exactly one wins', async () => {
    const dataDir = await folder();
    await acquireDataDirLock(dataDir, probe(4242, NOW - 600_000)); // left behind
    const outcomes = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => acquireDataDirLock(dataDir, probe(5000 + i, NOW, { 5001: NOW, 5002: NOW, 5003: NOW, 5004: NOW, 5005: NOW }))));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(DataDirLockedError);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireDataDirLock>>>).value.release();
  });

  it('reports this process as it is', () => {
    const here = processProbe();
    expect(here.pid).toBe(process.pid);
    expect(here.alive(process.pid)).toBe(true);
    expect(here.bootedAt).toBeLessThan(here.startedAt);
  });
});

describe('localUrlOf', () => {
  it('reaches wildcard binds on loopback and keeps other hosts', () => {
    expect(localUrlOf('0.0.0.0', 8000)).toBe('http://127.0.0.1:8000');
    expect(localUrlOf('::', 8000)).toBe('http://[::1]:8000');
    expect(localUrlOf('127.0.0.1', 8000)).toBe('http://127.0.0.1:8000');
    expect(localUrlOf('::1', 8000)).toBe('http://[::1]:8000');
    expect(localUrlOf('10.1.2.3', 8000)).toBe('http://10.1.2.3:8000');
  });
});

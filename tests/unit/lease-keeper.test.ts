import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryHub } from '../../src/state/memory-state.js';
import { SharedStateUnavailableError, type LeaseStore } from '../../src/state/shared-state.js';
import { LeaseKeeper } from '../../src/upstream/lease-keeper.js';

const TTL = 6000;

/** A replica's leases on the hub, which can be made to fail (`down`, or only the calls named in `failing`) or never answer (`hung`). */
function leasesOf(hub: MemoryHub, replica: string) {
  const real = hub.leasesFor(replica);
  const control = { down: false, hung: false, failing: new Set<keyof LeaseStore>() };
  const guarded =
    <A extends unknown[], R>(method: keyof LeaseStore, call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      if (control.hung) return new Promise<R>(() => {});
      if (control.down || control.failing.has(method)) return Promise.reject(new SharedStateUnavailableError('redis is down'));
      return call(...args);
    };
  const leases: LeaseStore = { acquire: guarded('acquire', real.acquire), holder: guarded('holder', real.holder), release: guarded('release', real.release) };
  return { leases, control };
}

function keeper(hub: MemoryHub, replica: string, stopBudgetMs?: number) {
  const { leases, control } = leasesOf(hub, replica);
  const rounds: { held: boolean; holder: string | undefined }[] = [];
  const lease: LeaseKeeper = new LeaseKeeper({
    name: 'stdio:solo',
    leases,
    replicaId: replica,
    ttlMs: TTL,
    ...(stopBudgetMs !== undefined ? { stopBudgetMs } : {}),
    logger: silentLogger(),
    onRound: () => rounds.push({ held: lease.held, holder: lease.holder }),
  });
  return { lease, control, rounds };
}

/** A keeper on `hub` (a new one unless given), started and through its first round. */
async function started(replica: string, hub = new MemoryHub(() => Date.now()), stopBudgetMs?: number) {
  const one = keeper(hub, replica, stopBudgetMs);
  one.lease.start();
  await vi.advanceTimersByTimeAsync(0);
  return { hub, a: one };
}

/** Two replicas' keepers on one hub, `a` started first. */
async function twoReplicas() {
  const { hub, a } = await started('a');
  const { a: b } = await started('b', hub);
  return { hub, a, b };
}

/** Stops a keeper whose store may not answer: its bounded calls end as time passes. */
async function stopWhileTimePasses(lease: LeaseKeeper): Promise<void> {
  const stopping = lease.stop();
  await vi.advanceTimersByTimeAsync(TTL);
  await stopping;
}

describe('the lease of a processes: one server', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('is taken by the first replica at once; the others learn who holds it', async () => {
    const { a, b } = await twoReplicas();
    expect([a.lease.held, a.lease.holder]).toEqual([true, 'a']);
    expect([b.lease.held, b.lease.holder]).toEqual([false, 'a']);
    // Renewed every third of the ttl: the holder keeps it however long it runs.
    await vi.advanceTimersByTimeAsync(10 * TTL);
    expect(a.lease.held).toBe(true);
    expect(b.lease.held).toBe(false);
    expect(a.rounds.length).toBeGreaterThanOrEqual(30);
    await a.lease.stop();
    await b.lease.stop();
  });

  it('goes to another replica at its next round when the holder lets go, and within one ttl when the holder dies', async () => {
    const { hub, a, b } = await twoReplicas();
    await a.lease.stop();
    expect(await hub.leasesFor('x').holder('stdio:solo')).toBeUndefined();
    await b.lease.renew();
    expect([b.lease.held, b.lease.holder]).toEqual([true, 'b']);

    // b dies without a word (its timers stop, its lease stays until the ttl runs out).
    const { a: c } = await started('c', hub);
    b.control.hung = true;
    const diedAt = Date.now();
    while (!c.lease.held && Date.now() - diedAt < 10 * TTL) await vi.advanceTimersByTimeAsync(100);
    expect(Date.now() - diedAt).toBeLessThanOrEqual(TTL + TTL / 3 + 100);
    expect(c.lease.holder).toBe('c');
    await stopWhileTimePasses(b.lease);
    await c.lease.stop();
  });

  it('lets go once the ttl since its last renewal has passed while the store does not answer, and not before', async () => {
    const { a } = await started('a');
    expect(a.lease.held).toBe(true);
    // Renewed at 0, 2000 and 4000 ms; from then on every call fails.
    await vi.advanceTimersByTimeAsync(4000);
    a.control.down = true;
    await vi.advanceTimersByTimeAsync(TTL - 100);
    expect(a.lease.held).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(a.lease.held).toBe(false);
    expect(a.lease.holder).toBeUndefined();
    expect(a.rounds.at(-1)).toEqual({ held: false, holder: undefined });
    // The store answers again: the lease (expired meanwhile) is taken back.
    a.control.down = false;
    await vi.advanceTimersByTimeAsync(TTL / 3);
    expect(a.lease.held).toBe(true);
    await a.lease.stop();
  });

  it('lets go on time when the store hangs instead of failing', async () => {
    const { a } = await started('a');
    a.control.hung = true;
    await vi.advanceTimersByTimeAsync(TTL + 10);
    expect(a.lease.held).toBe(false);
    await stopWhileTimePasses(a.lease);
  });

  it('a replica that is refused while holding (the lease was taken from it) stops holding at once', async () => {
    const { hub, a } = await started('a');
    // The lease store lost the key (a Redis failover) and another replica took it.
    hub.dropLease('stdio:solo');
    await hub.leasesFor('b').acquire('stdio:solo', TTL);
    await a.lease.renew();
    expect([a.lease.held, a.lease.holder]).toEqual([false, 'b']);
    await a.lease.stop();
  });

  it('a replica refused while holding that cannot read the new holder no longer names itself the holder', async () => {
    const { hub, a } = await started('a');
    hub.dropLease('stdio:solo');
    await hub.leasesFor('b').acquire('stdio:solo', TTL);
    a.control.failing.add('holder');
    await a.lease.renew();
    expect([a.lease.held, a.lease.holder]).toEqual([false, undefined]);
    expect(a.rounds.at(-1)).toEqual({ held: false, holder: undefined });
    // The next round that can read the store names the holder again.
    a.control.failing.clear();
    await a.lease.renew();
    expect(a.lease.holder).toBe('b');
    await a.lease.stop();
  });

  it('with a stop budget, lets go that long before the lease can pass to another replica, and renews often enough to keep it meanwhile', async () => {
    const budget = TTL / 2;
    const { hub, a } = await started('a', undefined, budget);
    const { a: b } = await started('b', hub);
    // Renewed every third of the ttl less the budget: held through many of those windows.
    await vi.advanceTimersByTimeAsync(3 * TTL);
    expect([a.lease.held, b.lease.held, b.lease.holder]).toEqual([true, false, 'a']);
    const renewedBefore = a.rounds.length;
    await vi.advanceTimersByTimeAsync(TTL - budget);
    expect(a.rounds.length - renewedBefore).toBe(3);

    // Renewed now, then a's store fails: a lets go `budget` before the store frees the lease.
    await a.lease.renew();
    const lastRenewal = Date.now();
    a.control.down = true;
    let letGoAt: number | undefined;
    let takenAt: number | undefined;
    while (takenAt === undefined && Date.now() - lastRenewal < 3 * TTL) {
      await vi.advanceTimersByTimeAsync(50);
      if (letGoAt === undefined && !a.lease.held) letGoAt = Date.now();
      if (b.lease.held) takenAt = Date.now();
    }
    expect(letGoAt).toBeDefined();
    expect(takenAt).toBeDefined();
    expect(letGoAt! - lastRenewal).toBeGreaterThan(TTL - budget - 50);
    expect(letGoAt! - lastRenewal).toBeLessThanOrEqual(TTL - budget + 50);
    expect(takenAt! - letGoAt!).toBeGreaterThanOrEqual(budget - 50);
    expect(b.lease.holder).toBe('b');
    await stopWhileTimePasses(a.lease);
    await b.lease.stop();
  });

  it('refuses a stop budget that leaves no time to hold the lease', () => {
    expect(() => keeper(new MemoryHub(), 'a', TTL)).toThrow(/outlast/);
  });
});

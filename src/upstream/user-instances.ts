import { LimitExceededError } from '../limits/errors.js';

/** `gateway.upstreamIdentity.instances`. */
export interface InstanceLimits {
  /** A user's instance is stopped after this long without a request; 0: never for idleness. */
  idleSeconds: number;
  /** Instances one user may have, all servers together. */
  maxPerUser: number;
  /** Instances of all users together. */
  maxTotal: number;
}

/** One user's instance of one server, from the moment its start is decided. */
export interface InstanceSlot<T> {
  readonly server: string;
  readonly user: string;
  readonly startedAt: number;
  readonly lastUsedAt: number;
  /** Requests in flight (its own start counts as one): an instance serving one is never reaped. */
  readonly active: number;
  /** Holds on the instance besides requests (resource subscriptions): an instance held is never reaped for idleness. */
  readonly holds: number;
  /** Set once the instance exists; it may still be starting. */
  instance: T | undefined;
}

interface Slot<T> extends InstanceSlot<T> {
  lastUsedAt: number;
  active: number;
  holds: number;
  timer: NodeJS.Timeout | undefined;
  held: boolean;
  /** Called once the slot has been idle for `idleSeconds`. */
  onIdle: (slot: InstanceSlot<T>) => void;
  /** Set by `retireWhenIdle`: run when the last request in flight ends. */
  retire: (() => void) | undefined;
  /** Set by `detach`: off the books, never reaped for idleness. */
  detached: boolean;
}

/**
 * The bookkeeping of every per-user instance, all servers together: who has which, the caps,
 * and idleness. It starts and stops nothing itself: a slot that has been idle long enough is
 * handed to its `onIdle`, which stops the instance and releases the slot.
 *
 * Idle timers are armed when a slot's last request ends and re-armed lazily (a timer that
 * fires early for a slot used since waits the rest), so a busy instance costs no timer churn.
 */
export class UserInstances<T> {
  readonly #slots = new Map<string, Slot<T>>();
  readonly #limits: InstanceLimits;
  readonly #now: () => number;

  constructor(limits: InstanceLimits, options: { now?: () => number } = {}) {
    this.#limits = limits;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#slots.size;
  }

  find(server: string, user: string): InstanceSlot<T> | undefined {
    return this.#slots.get(keyOf(server, user));
  }

  all(): InstanceSlot<T>[] {
    return [...this.#slots.values()];
  }

  ofUser(user: string): InstanceSlot<T>[] {
    return this.all().filter((slot) => slot.user === user);
  }

  ofServer(server: string): InstanceSlot<T>[] {
    return this.all().filter((slot) => slot.server === server);
  }

  /**
   * Holds a place for `user`'s new instance of `server`, its start counting as a request in
   * flight (end it with the returned function). At a cap the answer is a refusal naming it:
   * no other user's instance is stopped to make room.
   */
  reserve(server: string, user: string, onIdle: (slot: InstanceSlot<T>) => void): { slot: InstanceSlot<T>; started: () => void } {
    const key = keyOf(server, user);
    if (this.#slots.has(key)) throw new Error(`an instance of "${server}" for ${user} is already held`);
    const own = this.ofUser(user).length;
    if (own >= this.#limits.maxPerUser) throw new LimitExceededError(`user ${user} already has ${own} instances (maxPerUser); "${server}" cannot start another until one stops`);
    if (this.#slots.size >= this.#limits.maxTotal) throw new LimitExceededError(`the gateway already runs ${this.#slots.size} per-user instances (maxTotal); "${server}" cannot start one for ${user}`);
    const now = this.#now();
    const slot: Slot<T> = { server, user, startedAt: now, lastUsedAt: now, active: 0, holds: 0, instance: undefined, timer: undefined, held: true, onIdle, retire: undefined, detached: false };
    this.#slots.set(key, slot);
    return { slot, started: this.use(slot) };
  }

  /** Records a request on the instance; the returned function ends it (a second call does nothing). */
  use(handle: InstanceSlot<T>): () => void {
    const slot = handle as Slot<T>;
    slot.active++;
    slot.lastUsedAt = this.#now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      slot.active--;
      slot.lastUsedAt = this.#now();
      if (slot.active > 0 || !slot.held) return;
      if (slot.retire) {
        const retire = slot.retire;
        slot.retire = undefined;
        retire();
        return;
      }
      if (slot.holds === 0) this.#arm(slot, this.#limits.idleSeconds * 1000);
    };
  }

  /**
   * Keeps the instance from being reaped for idleness until the returned function is called
   * (a second call does nothing): a resource subscription on it is use, however long no
   * request comes. It does not keep an instance whose user's sessions all ended (`retireWhenIdle`).
   */
  hold(handle: InstanceSlot<T>): () => void {
    const slot = handle as Slot<T>;
    slot.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.holds--;
      slot.lastUsedAt = this.#now();
      if (slot.holds === 0 && slot.active === 0 && slot.held && !slot.retire) this.#arm(slot, this.#limits.idleSeconds * 1000);
    };
  }

  /**
   * Marks the instance used now, without a request in flight (it was just handed to a caller, or
   * its user opened a session): the user is back, so a stop waiting for the requests in flight
   * to end (`retireWhenIdle`) is called off.
   */
  keep(handle: InstanceSlot<T>): void {
    const slot = handle as Slot<T>;
    slot.retire = undefined;
    slot.lastUsedAt = this.#now();
  }

  /** Runs `retire` now when nothing is in flight on the slot, else when its last request ends. */
  retireWhenIdle(handle: InstanceSlot<T>, retire: () => void): void {
    const slot = handle as Slot<T>;
    if (!slot.held) return;
    if (slot.active === 0) retire();
    else slot.retire = retire;
  }

  /** Gives the slot up (its instance stopped or never started); true when it was held. */
  release(handle: InstanceSlot<T>): boolean {
    const slot = handle as Slot<T>;
    if (!slot.held) return false;
    slot.held = false;
    slot.retire = undefined;
    clearTimeout(slot.timer);
    slot.timer = undefined;
    const key = keyOf(slot.server, slot.user);
    if (this.#slots.get(key) === slot) this.#slots.delete(key);
    return true;
  }

  /**
   * Takes the slot off the books while its instance finishes what it has in flight (its server
   * was replaced by a new definition): its place goes free at once, so that its user's next
   * request starts an instance of the replacement, and the caps stop counting it. It is no
   * longer found, kept or reaped for idleness; `retireWhenIdle` and `release` still work on it.
   */
  detach(handle: InstanceSlot<T>): void {
    const slot = handle as Slot<T>;
    slot.detached = true;
    clearTimeout(slot.timer);
    slot.timer = undefined;
    const key = keyOf(slot.server, slot.user);
    if (this.#slots.get(key) === slot) this.#slots.delete(key);
  }

  /** Clears every timer and forgets every slot (the owner stops the instances). */
  close(): void {
    for (const slot of this.#slots.values()) this.release(slot);
  }

  #arm(slot: Slot<T>, delayMs: number): void {
    if (this.#limits.idleSeconds === 0 || slot.timer || slot.detached) return;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      // The end of the request in flight, or the release of the last hold, re-arms it.
      if (!slot.held || slot.active > 0 || slot.holds > 0) return;
      const idleFor = this.#now() - slot.lastUsedAt;
      const idleMs = this.#limits.idleSeconds * 1000;
      if (idleFor >= idleMs) slot.onIdle(slot);
      else this.#arm(slot, idleMs - idleFor);
    }, delayMs);
    slot.timer.unref();
  }
}

function keyOf(server: string, user: string): string {
  return `${server}\0${user}`;
}

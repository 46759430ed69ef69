/**
 * What is kept of a call that waits for its client's input (a 2026-07-28 request answered
 * `input_required` on behalf of a 2025 upstream that asked the client something mid-call):
 * plain JSON, so that a shared store can hold it.
 */
export interface PausedCallRecord {
  /** Named in the `requestState` the client was given; never guessable (a random UUID). */
  id: string;
  /** Who made the call: only the same principal's retry may resume it (the state is bound to it too). */
  principal: string;
  /** `tools/call`, `prompts/get` or `resources/read`. */
  method: string;
  /** The tool or prompt name, or the URI, as the client named it. */
  target: string;
  /** The keys of the input requests the client was sent: its retry must answer each. */
  asked: string[];
  /** When the call is given up (epoch ms), set by the store. */
  expiresAt: number;
}

/** A paused call: its record, and the live handles (the upstream request in flight) that only this process holds. */
export interface PausedCall<Live> {
  record: Omit<PausedCallRecord, 'expiresAt'> & { expiresAt?: number };
  live: Live;
}

/**
 * Where paused calls wait for their retry. Each is taken once: by the retry that resumes it,
 * or by expiry, after which the caller cancels its upstream work.
 *
 * A second replica would need the record in a shared store (Redis: `SET … PX ttl` on put,
 * `GETDEL` on take, expiry from key-expiry events or a sweep), the same `requestState` key on
 * every replica, and a way to reach the live handles: the upstream request is a stream held by
 * one process, so a retry that lands elsewhere must be forwarded to the replica named in the
 * record (or kept there by routing on the state). Nothing else of a paused call is in memory.
 */
export interface PausedCallStore<Live> {
  /** Holds `call` until it is taken or expires; false when the store is full (the call is not held). */
  put(call: PausedCall<Live>): boolean;
  /** Removes and returns the call, or undefined when there is none (never held, taken already, or expired). */
  take(id: string): PausedCall<Live> | undefined;
  /** Removes and returns every call whose time ran out by `now` (epoch ms). */
  expire(now: number): PausedCall<Live>[];
  readonly size: number;
  /** Stops the store's timer and hands back every call still held (shutdown: they are cancelled). */
  stop(): PausedCall<Live>[];
}

export interface InMemoryPausedCallsOptions<Live> {
  /** How long a call is held for its retry. */
  ttlMs: number;
  /** Calls held at most; each holds an upstream request open. */
  capacity: number;
  /** Called with each call that expired, after it left the store. */
  onExpired: (call: PausedCall<Live>) => void;
  /** The clock; `Date.now` unless a test needs another. */
  now?: () => number;
}

/**
 * Paused calls of this process. Every call is held for the same time, so insertion order is
 * expiry order: one timer, armed for the oldest call, is all the store needs, and `stop()`
 * clears it (no timer outlives the store).
 */
export class InMemoryPausedCalls<Live> implements PausedCallStore<Live> {
  readonly #calls = new Map<string, PausedCall<Live> & { record: PausedCallRecord }>();
  readonly #options: InMemoryPausedCallsOptions<Live>;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: InMemoryPausedCallsOptions<Live>) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#calls.size;
  }

  put(call: PausedCall<Live>): boolean {
    if (this.#stopped || this.#calls.size >= this.#options.capacity) return false;
    const record: PausedCallRecord = { ...call.record, expiresAt: this.#now() + this.#options.ttlMs };
    this.#calls.set(record.id, { record, live: call.live });
    if (this.#calls.size === 1) this.#arm();
    return true;
  }

  take(id: string): PausedCall<Live> | undefined {
    const call = this.#calls.get(id);
    if (!call) return undefined;
    this.#calls.delete(id);
    if (this.#calls.size === 0) this.#arm();
    // A call past its time that the timer has not reached yet is expired, not resumable.
    if (call.record.expiresAt <= this.#now()) {
      this.#options.onExpired(call);
      return undefined;
    }
    return call;
  }

  expire(now: number): PausedCall<Live>[] {
    const expired: PausedCall<Live>[] = [];
    for (const [id, call] of this.#calls) {
      if (call.record.expiresAt > now) break;
      this.#calls.delete(id);
      expired.push(call);
    }
    return expired;
  }

  stop(): PausedCall<Live>[] {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = [...this.#calls.values()];
    this.#calls.clear();
    return held;
  }

  /** Arms the timer for the oldest call held, if any. */
  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const oldest = this.#calls.values().next();
    if (oldest.done || this.#stopped) return;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, oldest.value.record.expiresAt - this.#now()));
    // Held calls are not a reason to keep the process alive; shutdown ends them.
    this.#timer.unref();
  }

  #sweep(): void {
    this.#timer = undefined;
    for (const call of this.expire(this.#now())) this.#options.onExpired(call);
    this.#arm();
  }
}

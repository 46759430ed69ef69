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
  /** The caller's rate key (its API key or principal): what the per-caller bound counts. */
  caller: string;
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
 * A store holds the calls of one process: the upstream request of a paused call is a live
 * stream held by the replica that paused it, and cannot move. Replicas share paused calls by
 * naming the holder instead: the `requestState` names the replica, and a retry that lands on
 * another is forwarded to it over the replica bus (`gateway/paused-call-forwarding.ts`).
 */
export interface PausedCallStore<Live> {
  /**
   * Holds `call` until it is taken or expires: `held`, or why it is not (`full`: all callers
   * together hold as many as the store may; `caller-full`: this caller holds its share).
   */
  put(call: PausedCall<Live>): PutOutcome;
  /**
   * Removes and returns the call, or undefined when there is none (never held, taken already,
   * or expired). Given a `principal`, a call paused by another principal is left where it is
   * and undefined returned, as for an unknown call.
   */
  take(id: string, principal?: string): PausedCall<Live> | undefined;
  /** Removes and returns every call whose time ran out by `now` (epoch ms). */
  expire(now: number): PausedCall<Live>[];
  readonly size: number;
  /** Stops the store's timer and hands back every call still held (shutdown: they are cancelled). */
  stop(): PausedCall<Live>[];
}

export type PutOutcome = 'held' | 'full' | 'caller-full';

export interface InMemoryPausedCallsOptions<Live> {
  /** How long a call is held for its retry. */
  ttlMs: number;
  /** Calls held at most; each holds an upstream request open. */
  capacity: number;
  /** Calls one caller may have held at once, so that no caller fills the store for the others. */
  capacityPerCaller: number;
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
  /** Calls held per caller (rate key); a caller with none has no entry. */
  readonly #perCaller = new Map<string, number>();
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

  put(call: PausedCall<Live>): PutOutcome {
    if (this.#stopped || this.#calls.size >= this.#options.capacity) return 'full';
    const { caller } = call.record;
    const held = this.#perCaller.get(caller) ?? 0;
    if (held >= this.#options.capacityPerCaller) return 'caller-full';
    const record: PausedCallRecord = { ...call.record, expiresAt: this.#now() + this.#options.ttlMs };
    this.#calls.set(record.id, { record, live: call.live });
    this.#perCaller.set(caller, held + 1);
    if (this.#calls.size === 1) this.#arm();
    return 'held';
  }

  take(id: string, principal?: string): PausedCall<Live> | undefined {
    const call = this.#calls.get(id);
    if (!call || (principal !== undefined && call.record.principal !== principal)) return undefined;
    this.#remove(call.record);
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
    for (const call of this.#calls.values()) {
      if (call.record.expiresAt > now) break;
      this.#remove(call.record);
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
    this.#perCaller.clear();
    return held;
  }

  #remove(record: PausedCallRecord): void {
    this.#calls.delete(record.id);
    const left = (this.#perCaller.get(record.caller) ?? 1) - 1;
    if (left > 0) this.#perCaller.set(record.caller, left);
    else this.#perCaller.delete(record.caller);
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

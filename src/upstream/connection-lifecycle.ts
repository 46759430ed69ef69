import { stateChange, type UpstreamState } from './connection-status.js';
import { ReconnectSchedule, type ReconnectPolicy } from './reconnect-schedule.js';

export interface LifecycleOptions {
  reconnect: ReconnectPolicy;
  /** The clock for uptime and the restart budget. */
  now: () => number;
  /** False for a disabled server: it stays `disabled` whatever happens (a config change replaces the connection). */
  enabled: boolean;
  /** The state changed, or became `ready` again (see `stateChange`). */
  onChange: () => void;
  /** An attempt began that is a restart: the connection was ready once, or has failed. */
  onRestart: () => void;
}

/** What became of a connection that went down (`ConnectionLifecycle.retry`). */
export type RetryOutcome = 'armed' | 'gave-up' | 'superseded';

/**
 * The state machine of one upstream connection, with no I/O of its own: its state, which
 * attempt or session is current, when it was connected, and what follows a loss or a failure
 * (a retry on the reconnect schedule, or none once the budget is spent).
 *
 * Every attempt, loss and stop starts a new generation. A callback that carries an older one
 * (a client closing, a ping giving up, a retry falling due) belongs to a connection that is
 * over, and is ignored: `current(generation)` tells.
 */
export class ConnectionLifecycle {
  #state: UpstreamState;
  #generation = 0;
  #stopped = false;
  #connectedAt: Date | undefined;
  readonly #retries: ReconnectSchedule;

  constructor(private readonly options: LifecycleOptions) {
    this.#state = options.enabled ? 'connecting' : 'disabled';
    this.#retries = new ReconnectSchedule(options.reconnect, options.now);
  }

  get state(): UpstreamState {
    return this.#state;
  }

  /** The current attempt's or session's generation. */
  get generation(): number {
    return this.#generation;
  }

  /** Whether `start` may begin connecting: the server is enabled and the connection not stopped. */
  get startable(): boolean {
    return this.#state !== 'disabled' && !this.#stopped;
  }

  /** When the current session became ready; undefined while there is none. */
  get connectedAt(): Date | undefined {
    return this.#connectedAt;
  }

  get nextRetryAt(): Date | undefined {
    return this.#retries.nextRetryAt;
  }

  /** Failed attempts in a row, as the restart budget counts them. */
  get failures(): number {
    return this.#retries.failures;
  }

  /** Whether `generation` is still the current one: nothing began, was lost or stopped since. */
  current(generation: number): boolean {
    return generation === this.#generation;
  }

  /** A new attempt begins, superseding every older one. Returns its generation. */
  begin(): number {
    const generation = ++this.#generation;
    if (this.#retries.restarting) this.options.onRestart();
    // A retry leaves the state at `down` until it succeeds: from outside, the server is still down.
    if (this.#state !== 'down') this.#setState('connecting');
    return generation;
  }

  /** The current attempt opened a session that is ready: its uptime counts from now. */
  ready(): void {
    this.#retries.connected();
    this.#connectedAt = new Date(this.options.now());
    this.#setState('ready');
  }

  /**
   * The current attempt failed. It is superseded at once, so that closing what it opened cannot
   * report a loss of its own. Returns the generation the failure is handled in.
   */
  failed(): number {
    this.#connectedAt = undefined;
    return ++this.#generation;
  }

  /**
   * The session of `generation` was lost. Undefined when that one is no longer current or the
   * connection stopped: nothing changes. Otherwise it is superseded, and returns the generation
   * the loss is handled in. Only a session that was ready counts for the restart budget (see
   * `failuresAfterLoss`), and its uptime ends here.
   */
  lost(generation: number): number | undefined {
    if (generation !== this.#generation || this.#stopped) return undefined;
    this.#retries.lost(this.#connectedAt?.getTime());
    this.#connectedAt = undefined;
    return ++this.#generation;
  }

  /**
   * The connection of `generation` is down. Unless something newer began, or the budget is
   * spent (`gave-up`: no attempt is coming), a new attempt is armed: `attempt` runs after the
   * backoff delay, if the connection is still that one then.
   */
  retry(generation: number, attempt: () => void): RetryOutcome {
    this.#setState('down');
    if (this.#stopped || generation !== this.#generation) return 'superseded';
    if (this.#retries.exhausted) {
      this.#retries.gaveUp();
      return 'gave-up';
    }
    this.#retries.arm(() => {
      if (!this.#stopped && generation === this.#generation) attempt();
    });
    return 'armed';
  }

  /** Retrying cannot help: the connection waits for a config change or an admin restart. */
  misconfigured(): void {
    this.#setState('misconfigured');
  }

  /** Supersedes whatever is under way and cancels an armed retry; nothing starts again after this. */
  stop(): void {
    this.#stopped = true;
    this.#generation++;
    this.#retries.cancel();
    this.#connectedAt = undefined;
  }

  #setState(state: UpstreamState): void {
    const change = stateChange(this.#state, state);
    this.#state = change.state;
    if (change.notify) this.options.onChange();
  }
}

import type { CircuitBreaker } from './circuit-breaker.js';

export interface HealthMonitorOptions {
  /** 0 disables pings. */
  intervalMs: number;
  timeoutMs: number;
  /** Pings failed in a row before the connection is given up. */
  failureThreshold: number;
  /** Sends one ping over the connection being watched; rejects if it is not answered in time. */
  ping: (timeoutMs: number) => Promise<unknown>;
  breaker: CircuitBreaker;
  /** Whenever what the monitor reports changed (ping failures, the breaker closing). */
  onChange: () => void;
  /** Once, when `failureThreshold` pings in a row went unanswered; the monitor has stopped. */
  onDead: (reason: string) => void;
  onPingFailed?: (failures: number, error: unknown) => void;
}

/**
 * Watches one live connection: pings it every `intervalMs`, counts failures in a row, and
 * declares it dead after `failureThreshold`. An answered ping is also news for the circuit
 * breaker: the upstream is reachable again (see `CircuitBreaker.reachable`). One monitor
 * watches one connection; a reconnect starts a new one.
 */
export class HealthMonitor {
  readonly #options: HealthMonitorOptions;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #pinging = false;
  #stopped = false;

  constructor(options: HealthMonitorOptions) {
    this.#options = options;
  }

  /** Pings failed in a row so far (0 when the last one was answered). */
  get failures(): number {
    return this.#failures;
  }

  start(): void {
    if (this.#options.intervalMs <= 0 || this.#stopped || this.#timer) return;
    this.#timer = setInterval(() => void this.#probe(), this.#options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #probe(): Promise<void> {
    // A ping slower than the interval must not pile up more pings behind it.
    if (this.#pinging) return;
    this.#pinging = true;
    const { breaker } = this.#options;
    try {
      await this.#options.ping(this.#options.timeoutMs);
      if (this.#stopped) return;
      const hadFailures = this.#failures > 0;
      const breakerBefore = breaker.state;
      this.#failures = 0;
      // Reachable again: a breaker opened only because the upstream could not be reached
      // closes now; one opened by slow answers waits for its probe (pings can be answered
      // while calls still time out).
      breaker.reachable();
      if (hadFailures || breaker.state !== breakerBefore) this.#options.onChange();
    } catch (error) {
      if (this.#stopped) return;
      this.#failures++;
      this.#options.onPingFailed?.(this.#failures, error);
      if (this.#failures >= this.#options.failureThreshold) {
        this.stop();
        this.#options.onDead(`no answer to ${this.#failures} pings`);
        return;
      }
      this.#options.onChange();
    } finally {
      this.#pinging = false;
    }
  }
}

import type { Logger } from 'pino';

/** One part of something that runs, as its start and stop order sees it. */
export interface Part {
  /** Named in the log when it fails to start or to stop. */
  readonly name: string;
  /**
   * Absent for a part that runs from when it was built (a timer set by its constructor, a
   * handler that needs no starting): it counts as started from the beginning, so that a failed
   * start or a stop leaves none of it running.
   */
  readonly start?: (() => unknown) | undefined;
  readonly stop?: (() => unknown) | undefined;
}

/**
 * Parts started in the order listed and stopped in the reverse order, so that each part may use
 * those listed before it for as long as it runs.
 *
 * A part that fails to start stops the parts running so far (in reverse order; a part that fails
 * to start cleans up after itself), then `start` rejects with its error. `stop` runs the stop of
 * every running part even when one throws: each failure is logged with the part's name, and
 * once all have run `stop` rejects with the failure (an `AggregateError` for several). A part is
 * stopped at most once, so calling `stop` again, or after a failed start, stops nothing twice.
 */
export class OrderedParts {
  readonly #parts: readonly Part[];
  readonly #running = new Set<Part>();
  #starting: Promise<void> | undefined;

  constructor(
    parts: readonly Part[],
    private readonly logger: Pick<Logger, 'error'>,
  ) {
    this.#parts = parts;
    for (const part of parts) if (!part.start) this.#running.add(part);
  }

  /** The names of the running parts, in start order. */
  get running(): string[] {
    return this.#parts.filter((part) => this.#running.has(part)).map((part) => part.name);
  }

  /** Starts the parts in order, once; a second call returns the first one's promise. */
  #stopping: Promise<void> | undefined;

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /**
   * Stops the running parts in reverse order, after a start under way has ended. A second call
   * while a stop is under way waits for that one, so no part is stopped out of order.
   */
  stop(): Promise<void> {
    const stopping = (this.#stopping ??= this.#stop().finally(() => {
      this.#stopping = undefined;
    }));
    return stopping;
  }

  async #stop(): Promise<void> {
    // A start under way ends first: no part then starts after the stop has passed it. A start
    // that failed has stopped what it started, and said why.
    await this.#starting?.catch(() => undefined);
    const failures = await this.#stopRunning();
    if (failures.length === 1) throw failures[0]!.error;
    if (failures.length > 1) {
      throw new AggregateError(
        failures.map((failure) => failure.error),
        `${failures.length} parts failed to stop: ${failures.map((failure) => failure.part).join(', ')}`,
      );
    }
  }

  async #start(): Promise<void> {
    for (const part of this.#parts) {
      if (!part.start) continue;
      try {
        await part.start();
      } catch (error) {
        this.logger.error({ err: error, part: part.name }, `${part.name} failed to start; stopping the parts started before it`);
        await this.#stopRunning();
        throw error;
      }
      this.#running.add(part);
    }
  }

  /** Stops every running part, last first; the failures, each already logged. */
  async #stopRunning(): Promise<{ part: string; error: unknown }[]> {
    const failures: { part: string; error: unknown }[] = [];
    for (const part of [...this.#parts].reverse()) {
      if (!this.#running.delete(part)) continue;
      try {
        await part.stop?.();
      } catch (error) {
        this.logger.error({ err: error, part: part.name }, `${part.name} failed to stop`);
        failures.push({ part: part.name, error });
      }
    }
    return failures;
  }
}

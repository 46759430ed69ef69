/** Keys remembered at most; beyond it the oldest is forgotten (its next occurrence is logged again). */
const MAX_KEYS = 10_000;

/**
 * Decides which occurrences of a repeated event get a log line: the first per key per window,
 * carrying how many were skipped since the previous line. A flood of refused requests thus
 * writes one line per client per window instead of one per request (pino writes stderr
 * synchronously, so a line per request would tie up the event loop during the flood).
 */
export class LogSampler {
  readonly #seen = new Map<string, { since: number; skipped: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** `undefined` when this occurrence is not to be logged; otherwise the occurrences skipped since the last line. */
  sample(key: string): number | undefined {
    const now = this.now();
    const entry = this.#seen.get(key);
    if (entry && now - entry.since < this.windowMs) {
      entry.skipped++;
      return undefined;
    }
    if (entry) this.#seen.delete(key);
    else if (this.#seen.size >= MAX_KEYS) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(key, { since: now, skipped: 0 });
    return entry?.skipped ?? 0;
  }
}

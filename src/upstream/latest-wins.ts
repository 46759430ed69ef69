/**
 * Never lets an older answer replace a newer one. Two `tools/list_changed` notifications in
 * quick succession start two `tools/list` requests; if the first answer arrives last it is
 * older than the one already applied and is dropped. Each request takes a sequence number; an
 * answer is applied when it is newer than the last one applied, so an older answer that
 * arrives first still counts (and stands if the newer request then fails).
 */
export class LatestWins {
  #issued = 0;
  #applied = 0;

  /**
   * Runs `fetch` and hands its result to `apply` unless a newer answer was applied meanwhile.
   * Resolves to whether it was applied; a failed fetch rejects and applies nothing.
   */
  async run<T>(fetch: () => Promise<T>, apply: (value: T) => void): Promise<boolean> {
    const sequence = ++this.#issued;
    const value = await fetch();
    if (sequence <= this.#applied) return false;
    this.#applied = sequence;
    apply(value);
    return true;
  }

  /** Makes every request in flight stale (a new connection will fetch afresh). */
  invalidate(): void {
    this.#applied = ++this.#issued;
  }
}

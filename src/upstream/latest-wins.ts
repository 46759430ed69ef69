/**
 * Applies only the answer of the newest request of one kind. Two `tools/list_changed`
 * notifications in quick succession start two `tools/list` requests; if the first answer
 * arrives last it is older than the second and must not replace it. Each request takes a
 * sequence number; an answer is applied only if no newer request was started since.
 */
export class LatestWins {
  #issued = 0;

  /**
   * Runs `fetch` and hands its result to `apply` if this is still the newest request.
   * Resolves to whether it was applied; a failed fetch rejects and applies nothing.
   */
  async run<T>(fetch: () => Promise<T>, apply: (value: T) => void): Promise<boolean> {
    const sequence = ++this.#issued;
    const value = await fetch();
    if (sequence !== this.#issued) return false;
    apply(value);
    return true;
  }

  /** Makes every request in flight stale (a new connection will fetch afresh). */
  invalidate(): void {
    this.#issued++;
  }
}

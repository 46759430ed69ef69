/**
 * Gives up the HTTP requests made for one upstream request (its POST, the GETs that resume its
 * answer stream): the part of an `AbortSignal` the transport and the pool use, without an
 * `AbortController` and `EventTarget` listeners per request, which cost 5–10 % of the upstream
 * side's CPU per call (bench/upstream-hop.ts).
 */
export class RequestAbort {
  #reason: unknown;
  #aborted = false;
  #listeners: ((reason: unknown) => void)[] = [];

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Why it was aborted (undefined until it is). */
  get reason(): unknown {
    return this.#reason;
  }

  /** Aborts with `reason` (without one, an `AbortError` as `AbortController.abort()` gives); a second abort does nothing. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener(this.#reason);
  }

  /** Calls `listener` with the reason once aborted (not when it already is); returns what stops listening. */
  onAbort(listener: (reason: unknown) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const at = this.#listeners.indexOf(listener);
      if (at >= 0) this.#listeners.splice(at, 1);
    };
  }
}

/** Resolves after `ms`, or at once when `abort` is aborted first (or already is). */
export function pause(ms: number, abort: RequestAbort): Promise<void> {
  if (abort.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = abort.onAbort(() => {
      clearTimeout(timer);
      resolve();
    });
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, ms);
  });
}

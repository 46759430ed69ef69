/** How long to wait between reconnect attempts. */
export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
}

/** A connection that stayed up this long counts as healthy again: its restart budget is reset. */
export const STABLE_AFTER_MS = 60_000;

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): exponential up to
 * `maxDelayMs`, with "equal jitter" (half fixed, half random) so that upstreams dropped at the
 * same moment do not all come back in the same instant. `random` returns a value in [0, 1).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(Math.max(attempt, 0), 20));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * The failure count after a connection is lost. Only a connection that was ready and stayed up
 * for `STABLE_AFTER_MS` earns a fresh budget; `connectedAtMs` is undefined when the lost
 * connection never became ready (a reconnect that failed part-way), which must keep counting
 * or `maxAttempts` is never reached.
 */
export function failuresAfterLoss(failures: number, connectedAtMs: number | undefined, nowMs: number): number {
  if (connectedAtMs !== undefined && nowMs - connectedAtMs >= STABLE_AFTER_MS) return 0;
  return failures;
}

/**
 * `promise`, or a rejection after `ms`. The work itself cannot be withdrawn (a Redis command stays
 * in the client's queue); its late outcome is ignored.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  // Its rejection is handled by the race below; after a timeout nobody awaits it, and that late rejection is the ignored outcome.
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

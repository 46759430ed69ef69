/** An access token the gateway holds for an upstream. */
export interface HeldToken {
  value: string;
  /** Epoch ms. */
  obtainedAt: number;
  /** Epoch ms; undefined when the authorization server gave no lifetime. */
  expiresAt: number | undefined;
  /** What was granted, as the token response said (or as asked when it did not say). */
  scope: string | undefined;
}

/** A token is renewed when this share of its life or less is left... */
const RENEW_SHARE = 0.1;
/** ...or this long, whichever is less: a one-hour token is renewed 30 s before it ends, a 60 s token 6 s before. */
const RENEW_MARGIN_MS = 30_000;

/** Whether `token` should be replaced before it is used at `now`. A token of unknown lifetime is kept until refused. */
export function needsRenewal(token: HeldToken, now: number): boolean {
  if (token.expiresAt === undefined) return false;
  const life = token.expiresAt - token.obtainedAt;
  return token.expiresAt - now <= Math.min(life * RENEW_SHARE, RENEW_MARGIN_MS);
}

/** Whether `token` can still be sent at `now` (a renewal failed: the old one serves while it lasts). */
export function stillValid(token: HeldToken, now: number): boolean {
  return token.expiresAt === undefined || token.expiresAt > now;
}

/** After a failed token request the next waits this long... */
const FIRST_COOLDOWN_MS = 5_000;
/** ...doubling with each failure in a row, up to this. */
const MAX_COOLDOWN_MS = 60_000;

/**
 * How long to wait after `failures` failed token requests in a row before asking again: an
 * authorization server that is down or refusing is not asked once per call (5 s, 10 s, 20 s...
 * up to a minute).
 */
export function renewalCooldownMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(FIRST_COOLDOWN_MS * 2 ** (failures - 1), MAX_COOLDOWN_MS);
}

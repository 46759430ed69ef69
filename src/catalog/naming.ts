import { createHash } from 'node:crypto';

/**
 * The naming contract: every name a client sees matches `^[a-zA-Z0-9_-]{1,64}$`, the limit
 * that OpenAI-style and Anthropic-style tool APIs enforce. Names that do not fit are made to
 * fit deterministically (readable head + short hash of the full name), so they stay stable
 * across restarts and replicas.
 */
export const MAX_NAME_LENGTH = 64;
const LEGAL = /^[a-zA-Z0-9_-]{1,64}$/;
const HASH_LENGTH = 8;

export function isLegalName(name: string): boolean {
  return LEGAL.test(name);
}

/** A short, stable hash of `text` (hex of SHA-256). */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, HASH_LENGTH);
}

/** `name` unchanged when legal; otherwise illegal characters become `_`, cut to fit, plus a hash of the original. */
export function legalName(name: string): string {
  if (isLegalName(name)) return name;
  return withHashSuffix(name.replace(/[^a-zA-Z0-9_-]/g, '_'), name);
}

/** `head` cut to leave room for `_<hash of key>`. Used for shortening and for resolving collisions. */
export function withHashSuffix(head: string, key: string): string {
  const room = MAX_NAME_LENGTH - HASH_LENGTH - 1;
  const cleaned = head.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, room);
  return `${cleaned}_${shortHash(key)}`;
}

/** The exposed name of an upstream's item: `<prefix><separator><name>`, or the name alone for an empty prefix. */
export function exposedName(prefix: string, separator: string, name: string): string {
  return legalName(prefix === '' ? name : `${prefix}${separator}${name}`);
}

/**
 * `wanted` if no one has it yet; otherwise `wanted` with a hash suffix derived from `key`
 * (which identifies the item, e.g. server and original name), so the loser of a collision
 * gets the same name every time.
 */
export function claimName(wanted: string, key: string, taken: ReadonlyMap<string, unknown>): string {
  if (!taken.has(wanted)) return wanted;
  let candidate = withHashSuffix(wanted, key);
  for (let attempt = 1; taken.has(candidate); attempt++) candidate = withHashSuffix(wanted, `${key}\0${attempt}`);
  return candidate;
}

/** Orders items by server name: collisions are decided by it, never by connection order. */
export function byServerName<T extends { server: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0));
}

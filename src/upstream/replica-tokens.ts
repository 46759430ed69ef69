import { createHash } from 'node:crypto';
import { tagWith, untag } from './minted-values.js';

/**
 * What an upstream's `requestState` or task id starts with once it has left a server with
 * `urls`: `conflux.replica.<replica key>.<the upstream's own value>`. The replica that minted a
 * value holds what it names, so the value carries its replica with it: a retry or a task
 * request goes back there from any gateway process, with nothing remembered in between.
 * Distinct from `conflux.paused.`, which names a call the gateway itself paused
 * (`gateway/modern-call-bridge.ts`).
 */
export const REPLICA_TOKEN_PREFIX = 'conflux.replica.';

/** Characters of a replica key: base64url, so it never holds the `.` that ends it. */
const KEY_LENGTH = 8;

/**
 * Each replica's key: a short hash of its URL, the same on every gateway that has the config
 * (whatever its order), and telling nothing of a credential. The hash is over the URL without
 * its user info and query (where credentials go, and a short hash of a weak password could be
 * tested against guesses), in the normal form `new URL()` gives (host case, default port,
 * trailing slash). Replicas that are alike in that form are told apart by their occurrence.
 */
export function replicaKeys(urls: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return urls.map((url) => {
    const identity = replicaIdentity(url);
    const occurrence = seen.get(identity) ?? 0;
    seen.set(identity, occurrence + 1);
    const hashed = occurrence === 0 ? identity : `${identity}#${occurrence}`;
    return createHash('sha256').update(hashed).digest('base64url').slice(0, KEY_LENGTH);
  });
}

function replicaIdentity(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.href.replace(/\/+$/, '');
  } catch {
    return url;
  }
}

/** `value` as it leaves the server: tagged with the replica (by its key) that gave it. */
export function tagWithReplica(key: string, value: string): string {
  return tagWith(REPLICA_TOKEN_PREFIX, key, value);
}

/** The replica key and the upstream's own value of a tagged value; undefined for one that is not tagged. */
export function untagReplica(value: string): { key: string; value: string } | undefined {
  return untag(REPLICA_TOKEN_PREFIX, value);
}

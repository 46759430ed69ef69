import { credentialSecrets } from '../../observability/redact.js';
import type { UpstreamAuth, UpstreamCredentials } from './upstream-auth.js';

/** Distinct credential values kept; older ones are forgotten (a renewed token every few minutes must not grow without end). */
const KEPT = 32;

/**
 * The credential values a connection sent lately (resolved from a file or the environment,
 * tokens issued to it), so that its redactor can hide them wherever an upstream repeats them.
 */
export class RecentCredentials {
  readonly #values = new Set<string>();

  add(values: readonly string[]): void {
    for (const value of values) {
      // Re-inserted: the set's order is then the order of last use, oldest first.
      this.#values.delete(value);
      this.#values.add(value);
    }
    while (this.#values.size > KEPT) this.#values.delete(this.#values.values().next().value!);
  }

  values(): IterableIterator<string> {
    return this.#values.values();
  }
}

/** `auth` whose every credential handed out is also noted in `sent`. */
export function observedAuth(auth: UpstreamAuth, sent: RecentCredentials): UpstreamAuth {
  // Credentials change rarely (a rotation, a renewal): the same ones again are not noted again.
  let last: UpstreamCredentials | undefined;
  return {
    ready: () => auth.ready(),
    credentials: async () => {
      const credentials = await auth.credentials();
      if (!last || !sameValues(last.headers, credentials.headers) || !sameValues(last.query, credentials.query)) {
        sent.add(credentialSecrets(credentials));
        last = credentials;
      }
      return credentials;
    },
    onRejected: (challenge) => auth.onRejected(challenge),
    close: () => auth.close(),
  };
}

function sameValues(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => a[name] === b[name]);
}

import type { AuthorizationOutcome } from './pending-authorizations.js';
import { UpstreamAuthError } from './upstream-auth.js';

/**
 * A user must authorise the gateway at `authorizationUrl` (the gateway's own start link) before
 * their call can reach the server. Besides the URL it carries the link's handle (the
 * `elicitationId` a client that opens URLs for the user is given) and a way to wait for the
 * callback, so whoever shows the URL can also wait for the user and retry.
 */
export class AuthorizationRequiredError extends UpstreamAuthError {
  readonly #outcome: Promise<AuthorizationOutcome>;
  declare readonly authorizationUrl: string;
  /** The start link's handle: one URL, one id. Not enumerable, like the URL: a logged error must not carry it. */
  declare readonly elicitationId: string;

  /** `performance.now()` when the authorization expires (undefined: not known). */
  readonly #deadline: number | undefined;

  /** `remainingMs`: how long the authorization stays open (`authorizationTimeoutSeconds` from its start). */
  constructor(server: string, message: string, authorizationUrl: string, elicitationId: string, outcome: Promise<AuthorizationOutcome>, remainingMs?: number) {
    super('authorization-required', server, message, authorizationUrl);
    Object.defineProperty(this, 'elicitationId', { value: elicitationId, enumerable: false });
    this.#outcome = outcome;
    this.#deadline = remainingMs === undefined ? undefined : performance.now() + Math.max(0, remainingMs);
  }

  /** How long the user has left to complete it; undefined when not known. */
  remainingMs(): number | undefined {
    return this.#deadline === undefined ? undefined : Math.max(0, this.#deadline - performance.now());
  }

  /** What a log or serialiser sees: the kind, the server and the message, never the URL or its handle. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, kind: this.kind, server: this.server, message: this.message };
  }

  /** Whether the user completed the authorization within `timeoutMs` (false also when `signal` aborts first, or it failed). */
  async connected(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return false;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const gaveUp = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      onAbort = () => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.#outcome.then((outcome) => outcome.connected), gaveUp]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** The text a user reads when a call needs their authorisation: what to do, and the URL. */
export function authorizationRequiredText(error: UpstreamAuthError): string {
  const where = error.authorizationUrl ? ` Open this URL to authorise it, then call again: ${error.authorizationUrl}` : '';
  return `"${error.server}" acts for each user, and you have not authorised the gateway there yet.${where}`;
}

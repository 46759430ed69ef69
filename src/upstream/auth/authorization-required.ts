import type { AuthorizationOutcome } from './pending-authorizations.js';
import { UpstreamAuthError } from './upstream-auth.js';

/**
 * A user must authorise the gateway at `authorizationUrl` before their call can reach the
 * server. Besides the URL it carries the authorization's `state` (the `elicitationId` a client
 * that opens URLs for the user is given) and a way to wait for its callback, so whoever shows
 * the URL can also wait for the user and retry.
 */
export class AuthorizationRequiredError extends UpstreamAuthError {
  readonly #outcome: Promise<AuthorizationOutcome>;

  constructor(
    server: string,
    message: string,
    override readonly authorizationUrl: string,
    /** The authorization's `state`: one URL, one id. */
    readonly elicitationId: string,
    outcome: Promise<AuthorizationOutcome>,
  ) {
    super('authorization-required', server, message, authorizationUrl);
    this.#outcome = outcome;
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

import type { FetchLike } from '@modelcontextprotocol/client';
import type { AuthChallenge, UpstreamAuth } from './upstream-auth.js';

/**
 * `base` with `auth`'s credentials on every request (its headers win over any of the same
 * name, whatever their spelling; its query parameters join the URL's), and one retry of a
 * request refused for them when the auth has new ones. For the SDK's fetch-based transports
 * (legacy SSE); the Streamable HTTP transport does the same on `node:http`.
 */
export function authorizedFetch(auth: UpstreamAuth, base: FetchLike): FetchLike {
  return async (url, init) => {
    for (let attempt = 1; ; attempt++) {
      const credentials = await auth.credentials();
      const target = new URL(url);
      for (const [name, value] of Object.entries(credentials.query)) target.searchParams.set(name, value);
      const headers = new Headers(init?.headers);
      for (const [name, value] of Object.entries(credentials.headers)) headers.set(name, value);
      const response = await base(target, { ...init, headers });
      const challenge = attempt === 1 ? authChallenge(response) : undefined;
      if (!challenge) return response;
      let retry: boolean;
      try {
        retry = await auth.onRejected(challenge);
      } catch (error) {
        // The refusal's body is not read by anyone: let its connection go. Silently: a body that
        // cannot be cancelled has failed already, and the auth's error is what the caller needs.
        await response.body?.cancel().catch(() => {});
        throw error;
      }
      if (!retry) return response;
      await response.body?.cancel();
    }
  };
}

/** A refusal the auth may recover from: 401, or 403 naming `insufficient_scope`. */
export function authChallenge(response: { status: number; headers: Headers }): AuthChallenge | undefined {
  const wwwAuthenticate = response.headers.get('www-authenticate') ?? undefined;
  if (response.status === 401) return { status: 401, wwwAuthenticate };
  if (response.status === 403 && wwwAuthenticate && INSUFFICIENT_SCOPE.test(wwwAuthenticate)) return { status: 403, wwwAuthenticate };
  return undefined;
}

export const INSUFFICIENT_SCOPE = /error\s*=\s*"?insufficient_scope/i;

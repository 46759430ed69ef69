import type { FetchLike } from '@modelcontextprotocol/client';

/** A discovery, registration or token request gives up after this long. */
const OAUTH_REQUEST_TIMEOUT_MS = 30_000;

/**
 * `fetch` for the SDK's OAuth client functions (`auth()` and what it calls): each request
 * bounded in time, and its answer a `Response` of the global class as it is now. The HTTP
 * server (`@hono/node-server`) replaces the global `Response` with a lighter class of its own
 * once the gateway listens, and the SDK reads an authorization server's error answer only if it
 * is `instanceof Response`: a native one (what `fetch` returns) would be misread as a server
 * error and the real OAuth error (`invalid_client`, say) lost.
 */
export const oauthFetch: FetchLike = async (url, init) => {
  const timeout = AbortSignal.timeout(OAUTH_REQUEST_TIMEOUT_MS);
  const response = await fetch(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  if (response instanceof Response) return response;
  const native = response as Response;
  return new Response(native.body, { status: native.status, statusText: native.statusText, headers: native.headers });
};

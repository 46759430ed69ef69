/**
 * Sign-in with the gateway's authorization server: the authorization code flow with PKCE for a
 * public client (RFC 7636), the resource named as RFC 8707 asks. The authorization server is
 * found as any MCP client finds it: the gateway's protected-resource metadata (RFC 9728), then
 * its authorization server metadata, which the gateway serves on its own origin. The gateway
 * registered the console as a client and names its id in the page.
 */

const PENDING_KEY = 'conflux.oauth.pending';

interface Pending {
  state: string;
  verifier: string;
  clientId: string;
  tokenEndpoint: string;
  redirectUri: string;
  resource: string;
}

/** The console's client id at the authorization server, when the gateway offers OAuth sign-in. */
export function oauthClientId(): string | undefined {
  return document.querySelector('meta[name="conflux-oauth-client"]')?.getAttribute('content') || undefined;
}

/** Sends the browser to the authorization server; it comes back to the console with a code. */
export async function startOAuthSignIn(clientId: string): Promise<void> {
  const resource = await json<{ resource?: string; authorization_servers?: string[]; scopes_supported?: string[] }>('/.well-known/oauth-protected-resource');
  const server = await json<{ authorization_endpoint?: string; token_endpoint?: string; code_challenge_methods_supported?: string[] }>('/.well-known/oauth-authorization-server');
  if (!resource.resource || !server.authorization_endpoint || !server.token_endpoint) throw new Error('the gateway does not describe its authorization server');
  const verifier = randomText(48);
  const state = randomText(24);
  const redirectUri = `${location.origin}/ui/`;
  const pending: Pending = { state, verifier, clientId, tokenEndpoint: server.token_endpoint, redirectUri, resource: resource.resource };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(server.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
    state,
    scope: ['openid', ...(resource.scopes_supported ?? [])].join(' '),
    resource: resource.resource,
  }).toString();
  location.assign(url.toString());
}

/**
 * When the page is the authorization server's answer (`?code=` or `?error=`), the access token
 * it grants; undefined on any other page. The code leaves the address bar at once.
 */
export async function finishOAuthSignIn(): Promise<string | undefined> {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return undefined;
  history.replaceState(null, '', location.pathname);
  const stored = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  // The state first: a link anyone can make (`/ui/?error=...`) must not put its words on this page.
  const pending = stored ? (JSON.parse(stored) as Pending) : undefined;
  if (!pending || params.get('state') !== pending.state) throw new Error('this sign-in was not started here (its state does not match): sign in again');
  if (params.has('error')) throw new Error(`the authorization server refused: ${params.get('error_description') ?? params.get('error')}`);
  const response = await fetch(pending.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code')!,
      redirect_uri: pending.redirectUri,
      client_id: pending.clientId,
      code_verifier: pending.verifier,
      resource: pending.resource,
    }),
    credentials: 'omit',
  });
  const body = (await response.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
  if (!response.ok || !body.access_token) throw new Error(`the authorization server issued no token: ${body.error_description ?? body.error ?? `HTTP ${response.status}`}`);
  return body.access_token;
}

async function json<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

function randomText(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function challengeOf(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
}

function base64url(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

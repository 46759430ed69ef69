import type { ProxyList } from '../limits/client-address.js';

/**
 * The origin a client addressed. Behind a TLS-terminating proxy the request reaches the gateway
 * as `http://<internal host>`; the proxy says what the client used in `X-Forwarded-Proto` and
 * `X-Forwarded-Host`. Those are believed only from a peer in `gateway.trustedProxies` (anyone
 * else could name any origin), and each only when well formed; the first entry of a list is the
 * one the outermost proxy saw, as Express reads them.
 */
export function requestOrigin(requestUrl: string, headers: Headers, peer: string, proxies: ProxyList | undefined): string {
  const own = new URL(requestUrl);
  if (!proxies?.has(peer)) return own.origin;
  const proto = firstEntry(headers.get('x-forwarded-proto'))?.toLowerCase();
  const scheme = proto === 'http' || proto === 'https' ? proto : own.protocol.slice(0, -1);
  const host = firstEntry(headers.get('x-forwarded-host'));
  // A host of the right shape may still be no URL's (`a:99999`, `[1:2]`): the request's own then.
  return (host && isHost(host) && originOf(scheme, host)) || originOf(scheme, own.host) || own.origin;
}

function firstEntry(value: string | null): string | undefined {
  const entry = value?.split(',')[0]?.trim();
  return entry ? entry : undefined;
}

/** A bare `name[:port]` or `[v6][:port]`: nothing a URL would read as user info, path or query. */
function isHost(value: string): boolean {
  return /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(value);
}

/** `scheme://host`, its default port dropped as URL does (`https://a:443` is `https://a`); undefined when no URL has it. */
function originOf(scheme: string, host: string): string | undefined {
  return URL.canParse(`${scheme}://${host}`) ? new URL(`${scheme}://${host}`).origin : undefined;
}

import { isIP, isIPv4, isIPv6 } from 'node:net';

/** The addresses whose reports of a client's address are believed (`TrustedProxies`). */
export interface ProxyList {
  has(address: string): boolean;
}

/**
 * The client a request comes from. The socket peer, unless the peer is a trusted proxy: then
 * the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Each proxy appends
 * the address it was connected from, so the entries right of that one were written by trusted
 * hops, and everything left of it by the client, who can write anything there. When every
 * entry is a trusted proxy, the left-most is taken (a trusted hop wrote it). A malformed entry
 * met on the way, or no header, leaves the peer: the value cannot be relied on.
 */
export function clientAddress(peer: string, forwardedFor: string | null | undefined, proxies: ProxyList | undefined): string {
  if (!forwardedFor || !proxies?.has(peer)) return peer;
  const entries = forwardedFor.split(',');
  let address: string | undefined;
  for (let i = entries.length - 1; i >= 0; i--) {
    address = plainAddress(entries[i]!);
    if (address === undefined) return peer;
    if (!proxies.has(address)) return address;
  }
  return address ?? peer;
}

/** An `X-Forwarded-For` entry as a bare IP address (IPv6 may come in brackets, either with a port), or `undefined`. */
function plainAddress(entry: string): string | undefined {
  const value = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(value);
  if (bracketed) return isIPv6(bracketed[1]!) ? bracketed[1]! : undefined;
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d{1,5}$/.exec(value);
  if (withPort) return isIPv4(withPort[1]!) ? withPort[1]! : undefined;
  return isIP(value) === 0 ? undefined : value;
}

/**
 * What per-address limits count under. An IPv4 address is itself (an IPv4-mapped IPv6 address
 * counts as its IPv4 address); an IPv6 address counts as its /64, since one host or one
 * customer line is commonly handed a whole /64 and could otherwise use a fresh address per
 * request. Anything else (`unknown` for in-process requests) is used as it is.
 */
export function clientAddressKey(address: string): string {
  const bare = address.split('%')[0]!;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (!isIPv6(bare)) return address;
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of a valid IPv6 address, without leading zeros. */
function expandIPv6(address: string): string[] {
  const groups = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['v4', 'v4'] : [g])));
  const [head = '', tail] = address.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return all.map((g) => (g === 'v4' ? g : (Number.parseInt(g, 16) || 0).toString(16)));
}

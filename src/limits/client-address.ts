import { isIPv4, isIPv6 } from 'node:net';

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

/**
 * Host names and addresses as the guards compare them. A Host header is taken apart by the
 * URL parser (so `127.1` and `0x7f.0.0.1` are the loopback address they denote) after a strict
 * shape check, so nothing that merely starts like a loopback address (`127.evil.example`,
 * `localhost.evil.example`, `evil.example@127.0.0.1`) passes for one.
 */

/** A Host header (or bind address) split into its lower-case name and port; undefined when malformed. */
export function parseHost(value: string): { name: string; port: string } | undefined {
  const host = value.trim().toLowerCase();
  if (!/^(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/.test(host)) return undefined;
  try {
    const url = new URL(`http://${host}`);
    return { name: url.hostname, port: url.port };
  } catch {
    return undefined;
  }
}

/** True for `localhost`, 127.0.0.0/8 and ::1 (also IPv4-mapped), as the URL parser writes them. */
export function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name === '[::1]' || name === '::1') return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) return true;
  // ::ffff:127.x.y.z, which the URL parser writes in hex.
  return /^\[?::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]?$/.test(name);
}

/** A bind address or Host value that denotes this machine's loopback interface. */
export function isLoopbackHost(value: string): boolean {
  const bracketed = value.includes(':') && !value.startsWith('[') && !/^[^:]+:\d+$/.test(value) ? `[${value}]` : value;
  const parsed = parseHost(bracketed);
  return parsed !== undefined && isLoopbackName(parsed.name);
}

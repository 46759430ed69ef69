import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { isLoopbackHost, isLoopbackName, parseHost } from './loopback.js';
import { refusal } from './refusal.js';

export interface HostOriginGuardOptions {
  /** The address the gateway is bound to (read per request: known only once it listens). */
  readonly bindHost: string;
  /**
   * Accepted Host values besides the loopback names: `name`, `name:port` or `*.domain`. Empty
   * means only the loopback names when bound to loopback, and any Host otherwise (the operator
   * is warned at start).
   */
  readonly allowedHosts: readonly string[];
  /** Accepted Origin values besides loopback origins; `*` accepts any. */
  readonly allowedOrigins: readonly string[];
}

type HostPolicy = 'explicit' | 'loopback' | 'any';
type HostVerdict = { allowed: false } | { allowed: true; authority: string };

/** Host values whose verdict is remembered. */
const MAX_REMEMBERED_HOSTS = 256;

/**
 * Refuses requests whose Host or Origin could come from another web site: a DNS-rebinding page
 * (a foreign name in Host) or a cross-site request (a foreign Origin, or `null` from sandboxed
 * and file pages). Applied to every route, since the REST API can register servers and call
 * tools just as `/mcp` can.
 */
export function hostOriginGuard(options: HostOriginGuardOptions): MiddlewareHandler {
  const explicit = options.allowedHosts.map((h) => h.trim().toLowerCase());
  const anyOrigin = options.allowedOrigins.includes('*');
  const origins = new Set(options.allowedOrigins.map(normaliseOrigin).filter((o): o is string => o !== undefined));

  // Verdicts per Host value: a client sends the same Host with every request, so the parsing
  // is done once. Bounded, so a stream of made-up names cannot grow it.
  const verdicts = new Map<string, HostVerdict>();
  const judge = (hostHeader: string, policy: HostPolicy): HostVerdict => {
    const key = `${policy} ${hostHeader}`;
    let verdict = verdicts.get(key);
    if (verdict === undefined) {
      const host = parseHost(hostHeader);
      // Loopback names are always accepted: a rebinding page cannot make a browser send one
      // (its request then goes to a loopback origin, and the Origin check judges it), and the
      // CLI and local probes reach a gateway bound to 0.0.0.0 through them.
      const allowed =
        host !== undefined && (policy === 'any' || isLoopbackName(host.name) || (policy === 'explicit' && explicit.some((p) => matchesHost(p, host))));
      verdict = allowed ? { allowed, authority: new URL(`http://${host.name}${host.port ? `:${host.port}` : ''}`).host } : { allowed };
      if (verdicts.size < MAX_REMEMBERED_HOSTS) verdicts.set(key, verdict);
    }
    return verdict;
  };

  return async (c, next) => {
    const hostHeader = c.req.header('host') ?? '';
    const policy: HostPolicy = explicit.length > 0 ? 'explicit' : isLoopbackHost(options.bindHost) ? 'loopback' : 'any';
    const verdict = judge(hostHeader, policy);
    if (!verdict.allowed) {
      return refusal(c, 403, 'forbidden_host', `Forbidden: Host "${hostHeader.slice(0, 100)}" is not allowed (gateway.allowedHosts)`);
    }
    // An absolute-form target (`POST http://other.example/mcp`) becomes the request URL, from
    // which the OAuth audience and the discovery documents are derived: it must name the Host.
    // An origin-form target (the usual `/mcp`) cannot, and costs no URL parse.
    const target = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.url;
    if ((target === undefined || !target.startsWith('/')) && new URL(c.req.url).host !== verdict.authority) {
      return refusal(c, 400, 'host_mismatch', 'Bad Request: the request target names another host than the Host header');
    }
    const origin = c.req.header('origin');
    if (origin !== undefined && !anyOrigin) {
      const normalised = normaliseOrigin(origin);
      // Same origin as an explicitly allowed Host: the gateway's own pages.
      const sameOrigin = policy === 'explicit' && normalised !== undefined && new URL(normalised).host === verdict.authority;
      const allowed = normalised !== undefined && (origins.has(normalised) || sameOrigin || isLoopbackName(new URL(normalised).hostname));
      if (!allowed) {
        return refusal(c, 403, 'forbidden_origin', `Forbidden: Origin "${origin.slice(0, 100)}" is not allowed (gateway.allowedOrigins)`);
      }
    }
    await next();
  };
}

/** `scheme://host[:port]` in lower case for http(s) origins; undefined for `null` and anything else. */
function normaliseOrigin(value: string): string | undefined {
  if (value === '*') return undefined;
  try {
    const url = new URL(value.trim());
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

function matchesHost(pattern: string, host: { name: string; port: string }): boolean {
  if (pattern.startsWith('*.')) return host.name.endsWith(pattern.slice(1)) && host.name.length > pattern.length - 1;
  const allowed = parseHost(pattern);
  if (!allowed) return false;
  return allowed.name === host.name && (allowed.port === '' || allowed.port === host.port);
}

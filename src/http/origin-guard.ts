import type { MiddlewareHandler } from 'hono';
import { jsonRpcError, BAD_REQUEST } from './json-rpc-errors.js';

export interface OriginGuardOptions {
  /** The address the gateway is bound to. */
  bindHost: string;
  /** Accepted Host header values (name or name:port); empty means loopback names when bound to loopback. */
  allowedHosts: readonly string[];
  /** Accepted Origin values besides loopback origins; "*" accepts any. */
  allowedOrigins: readonly string[];
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]', '::1'];

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.includes(host) || host.startsWith('127.');
}

/**
 * Refuses requests whose Host or Origin could come from a DNS-rebinding page, as the MCP
 * transport specification asks of servers bound to local addresses.
 */
export function originGuard(options: OriginGuardOptions): MiddlewareHandler {
  const configuredHosts = options.allowedHosts.map((h) => h.toLowerCase());
  const anyOrigin = options.allowedOrigins.includes('*');
  const origins = new Set(options.allowedOrigins.map((o) => o.toLowerCase().replace(/\/$/, '')));

  return async (c, next) => {
    // Read per request: the bind address is known only once the server listens.
    const hosts = configuredHosts.length > 0 ? configuredHosts : isLoopbackHost(options.bindHost) ? LOOPBACK_NAMES : undefined;
    const host = c.req.header('host')?.toLowerCase();
    if (hosts && (!host || !hostAllowed(host, hosts))) {
      return jsonRpcError(403, BAD_REQUEST, `Forbidden: Host "${host ?? ''}" is not allowed`);
    }
    const origin = c.req.header('origin');
    if (origin && !anyOrigin && !originAllowed(origin.toLowerCase(), origins)) {
      return jsonRpcError(403, BAD_REQUEST, `Forbidden: Origin "${origin}" is not allowed`);
    }
    await next();
  };
}

function hostAllowed(host: string, allowed: readonly string[]): boolean {
  if (allowed.includes(host)) return true;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  return allowed.includes(name);
}

function originAllowed(origin: string, allowed: ReadonlySet<string>): boolean {
  if (allowed.has(origin)) return true;
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

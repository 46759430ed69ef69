import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { clientAddress, type ProxyList } from '../limits/client-address.js';
import { remoteAddress } from './caller.js';
import type { ConsoleOAuthClient } from './console-oauth.js';
import { requestOrigin } from './forwarded-origin.js';
import { isLoopbackHost, isLoopbackName, parseHost } from './guards/loopback.js';
import { escapeHtml, page } from './oauth-callback.js';

/** Where the operator console is served. */
export const CONSOLE_PATH = '/ui';

/**
 * The console's policy: its own scripts, styles and API only; nothing inline, no frames, no
 * `eval`. The API it calls is this origin's (`/api/v1`, `/metrics`, the discovery documents);
 * with OAuth sign-in, also the authorization server's token endpoint (`connectOrigins`).
 */
export function consolePolicy(connectOrigins: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ["connect-src 'self'", ...connectOrigins].join(' '),
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
  ].join('; ');
}

/** Hashed file names (`index-4f3a2b1c.js`): their content never changes, so they are kept for a year. */
const ASSETS_PREFIX = 'assets/';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** The built console, read into memory once (it is small): relative path → content. */
export interface ConsoleFiles {
  readonly index: string;
  readonly files: ReadonlyMap<string, { body: Uint8Array; type: string }>;
}

export interface ConsoleOptions {
  /** Whether callers must authenticate (`gateway.auth` is not `none`). Without it the console is served to loopback clients only. */
  authRequired: boolean;
  /** With `gateway.auth.oauth`: the console's client at the authorization server for a redirect URI, when it has one (see console-oauth.ts). */
  oauthClient?: ((redirectUri: string) => Promise<ConsoleOAuthClient | undefined>) | undefined;
  /** Peers whose `X-Forwarded-For` names the client (`gateway.trustedProxies`). */
  trustedProxies?: ProxyList | undefined;
  /**
   * `gateway.allowedHosts`: the names (with a port where given) the console may be registered
   * at the authorization server for. Others, but a loopback name asked for from this machine, get
   * the pasted-token sign-in: the Host header is the client's word, and a registration made for
   * any name it sent would name that site as the console's.
   */
  registrationHosts?: readonly string[] | undefined;
}

/** The package's built console: `dist/console`, beside `dist/http` (and found the same way from `src/http` when run from source). */
export function builtConsoleDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/console');
}

/** The built console in `dir`; undefined when it has not been built (no `index.html`). */
export function loadConsoleFiles(dir: string): ConsoleFiles | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files = new Map<string, { body: Uint8Array; type: string }>();
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder)) {
      const path = join(folder, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path).split(sep).join('/'), { body: readFileSync(path), type: CONTENT_TYPES[extname(entry)] ?? 'application/octet-stream' });
    }
  };
  walk(dir);
  return { index: readFileSync(join(dir, 'index.html'), 'utf8'), files };
}

/**
 * Serves the console's static files at `/ui` (and its pages' paths, `/ui/<page>`, with the SPA's
 * index). Mounted after the app-wide guards like every route: the console's pages and its API
 * requests pass the same Host, Origin and content-type checks as any client's. Its index names
 * the authentication the gateway asks for, so the page need not probe the API to learn it.
 */
export function mountConsole<E extends object>(app: Hono<E>, built: ConsoleFiles, options: ConsoleOptions): void {
  const AUTH_META = '<meta name="conflux-auth" content="required">';
  const handler = async (c: Context) => {
    securityHeaders(c, consolePolicy());
    if (!options.authRequired && !localBrowser(c, options.trustedProxies)) {
      c.header('Cache-Control', 'no-store');
      return c.html(
        page('Console unavailable', 'This gateway has no authentication (gateway.auth: none), so its console is served to this machine only. Configure gateway.auth to use it from elsewhere.'),
        403,
      );
    }
    const path = c.req.path.slice(CONSOLE_PATH.length).replace(/^\/+/, '');
    const file = built.files.get(path);
    if (file && path !== 'index.html') {
      c.header('Content-Type', file.type);
      c.header('Cache-Control', path.startsWith(ASSETS_PREFIX) ? 'public, max-age=31536000, immutable' : 'no-cache');
      return c.body(file.body as Uint8Array<ArrayBuffer>);
    }
    // A missing asset is a 404, not the index: a stale page asking for an old bundle must not run HTML as script.
    if (path !== 'index.html' && (path.startsWith(ASSETS_PREFIX) || extname(path) !== '')) {
      c.header('Cache-Control', 'no-store');
      return c.html(page('Not found', `No console file ${escapeHtml(path).slice(0, 200)}`), 404);
    }
    c.header('Cache-Control', 'no-cache');
    if (!options.authRequired) return c.html(built.index.replace(AUTH_META, '<meta name="conflux-auth" content="none">'));
    // The authorization server sends the user back to the console's own address, as this request named it.
    const origin = requestOrigin(c.req.url, c.req.raw.headers, remoteAddress(c), options.trustedProxies);
    const client = registrable(origin, c, options) ? await options.oauthClient?.(`${origin}${CONSOLE_PATH}/`) : undefined;
    if (!client) return c.html(built.index);
    securityHeaders(c, consolePolicy(client.connectOrigins));
    return c.html(built.index.replace(AUTH_META, `<meta name="conflux-auth" content="oauth"><meta name="conflux-oauth-client" content="${escapeHtml(client.clientId)}">`));
  };
  app.get(CONSOLE_PATH, handler);
  app.get(`${CONSOLE_PATH}/*`, handler);
}

function securityHeaders(c: Context, policy: string): void {
  c.header('Content-Security-Policy', policy);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('X-Frame-Options', 'DENY');
  c.header('Cross-Origin-Opener-Policy', 'same-origin');
  c.header('Cross-Origin-Resource-Policy', 'same-origin');
}

/** Whether the console may be registered for pages at `origin` (see `ConsoleOptions.registrationHosts`). */
function registrable(origin: string, c: Context, options: ConsoleOptions): boolean {
  const url = new URL(origin);
  if (isLoopbackName(url.hostname.replace(/^\[|\]$/g, ''))) return fromLoopback(c, options.trustedProxies);
  const host = url.host.toLowerCase();
  return (options.registrationHosts ?? []).some((pattern) => {
    const wanted = pattern.trim().toLowerCase();
    return wanted === host || wanted === url.hostname.toLowerCase();
  });
}

function fromLoopback(c: Context, trustedProxies: ProxyList | undefined): boolean {
  const address = clientAddress(remoteAddress(c), c.req.header('x-forwarded-for'), trustedProxies);
  return isLoopbackHost(address);
}

/**
 * A browser on this machine, asking for a loopback name: the peer's address alone would also
 * pass every client of a reverse proxy on this machine that is not in `gateway.trustedProxies`.
 */
function localBrowser(c: Context, trustedProxies: ProxyList | undefined): boolean {
  const host = parseHost(c.req.header('host') ?? '');
  return host !== undefined && isLoopbackName(host.name) && fromLoopback(c, trustedProxies);
}

import type { Handler } from 'hono';
import { escapeHtml, pageHeaders } from './oauth-callback.js';

export interface IndexPageOptions {
  version: string;
  /** Where the operator console is served, when it is; the page links to it. */
  consolePath?: string | undefined;
}

interface Link {
  key: string;
  path: string;
  label: string;
  about: string;
}

/**
 * `/`: what answers here and where to go next, as a small HTML page for a browser and as JSON
 * for a client that asks for `application/json`. Public, like `/health`: it names only routes.
 */
export function indexPage(options: IndexPageOptions): Handler {
  const links: Link[] = [
    { key: 'mcp', path: '/mcp', label: 'MCP endpoint', about: 'Point an MCP client (Streamable HTTP) here.' },
    { key: 'health', path: '/health', label: 'Health', about: 'Upstream servers and their states.' },
    { key: 'openapi', path: '/api/v1/openapi.json', label: 'REST API', about: 'The OpenAPI 3.1 document of /api/v1.' },
    { key: 'metrics', path: '/metrics', label: 'Metrics', about: 'Prometheus metrics.' },
    ...(options.consolePath ? [{ key: 'console', path: options.consolePath, label: 'Console', about: 'Servers, tools and access, in the browser.' }] : []),
  ];
  return (c) => {
    c.header('Vary', 'Accept');
    if (prefersJson(c.req.header('accept'))) {
      c.header('Cache-Control', 'no-store');
      return c.json({ name: 'conflux', version: options.version, description: DESCRIPTION, links: Object.fromEntries(links.map((l) => [l.key, l.path])) });
    }
    // The gateway's pages' policy (`default-src 'none'`): the page loads, runs and submits nothing.
    pageHeaders(c);
    c.header('X-Content-Type-Options', 'nosniff');
    return c.html(page(options.version, new URL('/mcp', c.req.url).href, links));
  };
}

const DESCRIPTION = 'An MCP gateway: one MCP endpoint in front of many MCP servers, with merged tools, routing, fan-out and access control.';

/** JSON when the client asks for it and not for HTML (browsers list text/html; curl sends *\/*). */
function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const types = accept.split(',').map((part) => part.split(';')[0]!.trim().toLowerCase());
  return types.includes('application/json') && !types.includes('text/html');
}

function page(version: string, mcpUrl: string, links: readonly Link[]): string {
  const items = links
    .map((l) => `<dt><a href="${escapeHtml(l.path)}">${escapeHtml(l.label)}</a> <code>${escapeHtml(l.path)}</code></dt><dd>${escapeHtml(l.about)}</dd>`)
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Conflux ${escapeHtml(version)}</title>
</head>
<body>
<h1>Conflux <small>${escapeHtml(version)}</small></h1>
<p>${escapeHtml(DESCRIPTION)}</p>
<p>MCP clients connect to <code>${escapeHtml(mcpUrl)}</code>.</p>
<dl>
${items}
</dl>
</body>
</html>
`;
}

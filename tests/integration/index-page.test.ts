import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexPage } from '../../src/http/index-page.js';
import { GATEWAY_VERSION } from '../../src/version.js';
import { ROOT, startGateway, testConfig, type RunningGateway } from '../helpers/gateway.js';

const LINKS = ['/mcp', '/health', '/api/v1/openapi.json', '/metrics'];

describe('the index page at /', () => {
  let gateway: RunningGateway;
  let origin: string;

  beforeAll(async () => {
    // Without the console (a built one adds its link: see the last test).
    gateway = await startGateway(testConfig({}), { consoleDir: `${ROOT}/no-console-here` });
    origin = new URL(gateway.url).origin;
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('tells a browser what answers here and links to each surface, under a policy that lets the page load nothing', async () => {
    const response = await fetch(`${origin}/`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await response.text();
    expect(html).toContain(`<title>Conflux ${GATEWAY_VERSION}</title>`);
    expect(html).toContain(`<code>${origin}/mcp</code>`);
    expect([...html.matchAll(/<a href="([^"]+)">/g)].map(([, href]) => href)).toEqual(LINKS);
    expect(html).not.toMatch(/<script|<link|<img|style=/);
  });

  it('answers JSON to a client that asks for it', async () => {
    const response = await fetch(`${origin}/`, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('vary')).toContain('Accept');
    expect(await response.json()).toEqual({
      name: 'conflux',
      version: GATEWAY_VERSION,
      description: expect.stringContaining('MCP gateway'),
      links: { mcp: '/mcp', health: '/health', openapi: '/api/v1/openapi.json', metrics: '/metrics' },
    });
  });

  it('is behind the Host and Origin guard like every route, and other unknown paths stay JSON 404s', async () => {
    const foreignHost = await gateway.conflux.app.request('/', { headers: { host: 'rebind.example' } });
    expect(foreignHost.status).toBe(403);
    expect(((await foreignHost.json()) as { error: { code: string } }).error.code).toBe('forbidden_host');
    const foreignOrigin = await fetch(`${origin}/`, { headers: { origin: 'https://elsewhere.example' } });
    expect(foreignOrigin.status).toBe(403);
    const unknown = await fetch(`${origin}/no-such-page`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('links to the console when one is served', async () => {
    const app = new Hono().get('/', indexPage({ version: '9.9.9', consolePath: '/ui' }));
    const html = await (await app.request('http://127.0.0.1/')).text();
    expect([...html.matchAll(/<a href="([^"]+)">/g)].map(([, href]) => href)).toEqual([...LINKS, '/ui']);
    const json = (await (await app.request('http://127.0.0.1/', { headers: { accept: 'application/json' } })).json()) as { links: Record<string, string> };
    expect(json.links.console).toBe('/ui');
  });
});

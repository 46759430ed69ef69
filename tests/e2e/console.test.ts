import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { McpSessionSchema, ServerSchema } from '../../src/http/api/response-schemas.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite } from '../helpers/databases.js';
import { connectClient, ROOT, startGateway, stdioFixture, testConfig, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { builtConsole, chromiumAvailable, launchChromium, screenshot, unnamedControls, watchedPage, type WatchedPage } from './browser.js';

const available = chromiumAvailable();
const FOREIGN_HOST = 'elsewhere.example';

/**
 * The operator console at /ui, driven in headless Chromium against gateways with real upstreams:
 * one with API keys and access grants (an admin and a user), one with `auth: none`.
 */
describe.skipIf(!available)('the web console', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let open: RunningGateway;
  let gamma: RunningUpstream;
  let browser: Browser;
  let origin: string;
  let openOrigin: string;
  const keys: Record<'admin' | 'user', string> = { admin: '', user: '' };
  const pages: WatchedPage[] = [];

  const servers = () => ({
    alpha: stdioFixture('alpha', { tags: ['red'], description: 'The first demo server' }),
    beta: stdioFixture('beta', { tags: ['blue'] }),
    dead: { command: 'conflux-no-such-command', tags: ['blue'] },
  });

  beforeAll(async () => {
    const consoleDir = builtConsole();
    database = await freshPglite().open();
    gamma = await startStreamableUpstream('gamma');
    gateway = await startGateway(
      testConfig(servers(), {
        auth: { jwt: { secret: JWT_SECRET }, apiKeys: true },
        access: { grants: [{ group: 'users', servers: ['alpha', 'beta'], level: 'call' }] },
        reconnect: { initialDelayMs: 5000, maxDelayMs: 5000 },
      }),
      { database, consoleDir },
    );
    origin = new URL(gateway.url).origin;
    // The reference server too, for content of every kind (its tiny image).
    const everything = { command: join(ROOT, 'node_modules/.bin/mcp-server-everything'), args: ['stdio'] };
    open = await startGateway(testConfig({ ...servers(), everything }, { reconnect: { initialDelayMs: 5000, maxDelayMs: 5000 } }), { consoleDir });
    openOrigin = new URL(open.url).origin;
    // The keys people paste: made through the API by an admin, as an operator would.
    const root = bearer(await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] }));
    for (const [who, groups] of [['admin', ['MCP-Admin']], ['user', ['users']]] as const) {
      const response = await fetch(`${origin}/api/v1/api-keys`, {
        method: 'POST',
        headers: { ...root, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `${who}-key`, subject: `${who}@example.com`, groups }),
      });
      expect(response.status).toBe(201);
      keys[who] = ((await response.json()) as { key: string }).key;
    }
    browser = await launchChromium([FOREIGN_HOST]);
  });

  afterAll(async () => {
    for (const p of pages) await p.close().catch(() => {});
    await browser?.close();
    await gateway?.stop();
    await open?.stop();
    await gamma?.close();
    await database?.close();
  });

  const newPage = async () => {
    const watched = await watchedPage(browser);
    pages.push(watched);
    return watched;
  };

  const signIn = async (page: Page, key: string) => {
    await page.goto(`${origin}/ui/`);
    await page.getByLabel('API key or token').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('principal').waitFor();
  };

  const serverRow = (page: Page, name: string) => page.locator(`tr[data-server="${name}"]`);

  const openTools = async (page: Page) => {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Tools' }).click();
    await page.getByRole('heading', { name: 'Tools', level: 2 }).waitFor();
  };

  const search = async (page: Page, query: string) => {
    await page.getByLabel('Search tools').fill(query);
    await page.getByRole('status').filter({ hasText: `match "${query}"` }).waitFor();
    return page.getByRole('list', { name: 'Tools' }).locator('.tool-name').allTextContents();
  };

  it('signs an admin in with an API key and lists the servers with their states', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.admin);
    expect(await page.getByTestId('principal').textContent()).toBe('admin@example.com');
    expect(await page.evaluate('sessionStorage.getItem("conflux.credential")')).toBe(keys.admin);
    expect(await page.evaluate('localStorage.length')).toBe(0);

    await serverRow(page, 'alpha').waitFor();
    expect(await page.locator('tr[data-server]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-server')))).toEqual(['alpha', 'beta', 'dead']);
    expect(await serverRow(page, 'alpha').locator('.badge').textContent()).toBe('ready');
    expect(await serverRow(page, 'alpha').locator('.badge').getAttribute('class')).toContain('state-ready');
    expect(await serverRow(page, 'alpha').textContent()).toContain('The first demo server');
    expect(await serverRow(page, 'dead').locator('.badge').textContent()).toBe('misconfigured');
    expect(await serverRow(page, 'dead').locator('.last-error').textContent()).toBe('cannot start "conflux-no-such-command": command not found');
    expect(Number(await serverRow(page, 'alpha').locator('td.num').textContent())).toBeGreaterThan(5);
    expect(await serverRow(page, 'beta').locator('.tag').allTextContents()).toEqual(['blue']);
    await serverRow(page, 'alpha').getByRole('button', { name: 'Restart alpha' }).waitFor();
    await page.getByRole('heading', { name: 'Register a server' }).waitFor();
    expect(await unnamedControls(page)).toEqual([]);
    await screenshot(page, 'servers');
    expect(problems).toEqual([]);
  });

  it('finds a tool by search, calls it through the form generated from its schema, and shows the result', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.admin);
    await openTools(page);
    const found = await search(page, 'adds two numbers');
    expect(found.slice(0, 2).sort()).toEqual(['alpha__add', 'beta__add']);

    // While a query's answer is on its way, the page says it is searching: it does not count what
    // it holds (the last query's tools, or none) as this query's matches.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const isSearch = (url: URL) => url.pathname.endsWith('/tools') && url.searchParams.has('q');
    await page.route(isSearch, async (route) => {
      await held;
      await route.continue();
    });
    try {
      await page.getByLabel('Search tools').fill('echoes the text');
      await page.getByRole('status').filter({ hasText: 'Searching for "echoes the text"' }).waitFor();
      expect(await page.getByRole('list', { name: 'Tools' }).locator('.tool-name').allTextContents()).toEqual([]);
      release();
      await page.getByRole('status').filter({ hasText: /^\d+ tools match "echoes the text"$/ }).waitFor();
      expect(await page.getByRole('list', { name: 'Tools' }).locator('.tool-name').allTextContents()).toContain('alpha__echo');
    } finally {
      release();
      await page.unroute(isSearch);
    }
    await search(page, 'adds two numbers');

    await page.getByRole('button', { name: /^alpha__add/ }).click();
    await page.getByRole('heading', { name: 'alpha__add' }).waitFor();
    const form = page.getByRole('form', { name: 'Call alpha__add' });
    await form.getByLabel(/^a\b/).fill('2');
    await form.getByLabel(/^b\b/).fill('40');
    await form.getByRole('button', { name: 'Call tool' }).click();
    const result = page.getByTestId('tool-result');
    await result.waitFor();
    expect(await result.locator('.result-head strong').textContent()).toBe('Result');
    expect(await result.locator('.text-block').textContent()).toBe('42');
    expect(await result.locator('.result-head').textContent()).toMatch(/\d+ ms/);
    expect(JSON.parse((await result.locator('details pre').textContent())!)).toEqual({ sum: 42 });
    expect(await unnamedControls(page)).toEqual([]);
    await screenshot(page, 'tools');

    // A missing required argument is caught by the form, before any call.
    await form.getByLabel(/^a\b/).fill('');
    await form.getByRole('button', { name: 'Call tool' }).click();
    expect(await page.locator('#arg-a-problem').textContent()).toBe('required');
    expect(problems).toEqual([]);
  });

  it('shows a failing tool\'s error', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.admin);
    await openTools(page);
    const found = await search(page, 'always reports a tool error');
    // By keyboard: from the search box to the first tool, chosen with Enter, then to its call button.
    const first = found[0]!;
    expect(first).toMatch(/^(alpha|beta)__fail$/);
    await page.getByLabel('Search tools').press('Tab');
    expect(await page.evaluate('document.activeElement.querySelector(".tool-name")?.textContent')).toBe(first);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: first }).waitFor();
    const form = page.getByRole('form', { name: `Call ${first}` });
    await form.getByText('This tool takes no arguments.').waitFor();
    await form.getByRole('button', { name: 'Call tool' }).focus();
    await page.keyboard.press('Enter');
    const result = page.getByTestId('tool-result');
    await result.waitFor();
    expect(await result.getAttribute('class')).toContain('result-error');
    expect(await result.locator('.result-head strong').textContent()).toBe('Tool error');
    expect(await result.locator('.text-block').textContent()).toBe(`${first.split('__')[0]} failed on purpose`);
    expect(problems).toEqual([]);
  });

  it('broadcasts a tool to the servers that offer it and shows each server\'s result', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.admin);
    await openTools(page);
    await search(page, 'echoes the text');
    await page.getByRole('button', { name: /^alpha__echo/ }).click();
    const form = page.getByRole('form', { name: 'Broadcast echo' });
    await form.waitFor();
    await form.getByLabel(/^text\b/).fill('hello all');
    await form.getByRole('button', { name: 'Run on 2 servers' }).click();
    const results = page.getByTestId('broadcast-results');
    await results.waitFor();
    expect(await results.locator('p').first().textContent()).toContain('2/2 servers succeeded');
    expect((await results.locator('.text-block').allTextContents()).sort()).toEqual(['alpha: hello all', 'beta: hello all']);
    expect(problems).toEqual([]);
  });

  it('lets an admin register a server with the form, and disable it: its tools disappear', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.admin);
    await page.getByLabel('Name').fill('gamma server');
    await page.getByLabel('URL').fill('not a url');
    await page.getByRole('button', { name: 'Register' }).click();
    // Refused by the API's own schemas, in the page, before anything is sent.
    expect(await page.locator('#register-name-problem').textContent()).toMatch(/./);
    expect(await page.locator('#register-url-problem').textContent()).toBe('expected a URL');

    await page.getByLabel('Name').fill('gamma');
    await page.getByLabel('URL').fill(gamma.url);
    await page.getByLabel('Tags').fill('green, remote');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.getByText('Registered "gamma".').waitFor();
    await waitFor(async () => (await serverRow(page, 'gamma').locator('.badge').textContent().catch(() => '')) === 'ready', 30_000, 'gamma ready in the page');
    expect(await serverRow(page, 'gamma').locator('.tag').allTextContents()).toEqual(['green', 'remote']);

    await openTools(page);
    expect(await search(page, 'echoes the text')).toContain('gamma__echo');

    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Servers' }).click();
    await serverRow(page, 'gamma').getByRole('button', { name: 'Disable gamma' }).click();
    await waitFor(async () => (await serverRow(page, 'gamma').locator('.badge').textContent().catch(() => '')) === 'disabled', 30_000, 'gamma disabled in the page');
    await serverRow(page, 'gamma').getByRole('button', { name: 'Enable gamma' }).waitFor();
    const gammaView = ServerSchema.parse(await (await fetch(`${origin}/api/v1/servers/gamma`, { headers: bearer(keys.admin) })).json());
    expect(gammaView).toMatchObject({ source: 'api', enabled: false, state: 'disabled' });

    await openTools(page);
    const after = await search(page, 'echoes the text');
    expect(after).toContain('alpha__echo');
    expect(after).not.toContain('gamma__echo');

    // Removed, once confirmed.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Servers' }).click();
    page.once('dialog', (dialog) => void dialog.accept());
    await serverRow(page, 'gamma').getByRole('button', { name: 'Remove gamma' }).click();
    await serverRow(page, 'gamma').waitFor({ state: 'detached' });
    expect((await fetch(`${origin}/api/v1/servers/gamma`, { headers: bearer(keys.admin) })).status).toBe(404);
    expect(problems).toEqual([]);
  });

  it('shows admins the open sessions, the audit trail with filters, and live call charts', async () => {
    const client = await connectClient(gateway.url, 'e2e-inspector', { 'x-api-key': keys.admin });
    const { page, problems } = await newPage();
    try {
      await signIn(page, keys.admin);
      await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Activity' }).click();
      const sessions = page.getByRole('table', { name: /MCP sessions/ });
      await sessions.getByRole('row', { name: /e2e-inspector/ }).waitFor();
      expect(await sessions.getByRole('row', { name: /e2e-inspector/ }).textContent()).toContain('admin@example.com');
      // What the table shows, as the API describes it.
      const listed = z.object({ sessions: z.array(McpSessionSchema) }).parse(await (await fetch(`${origin}/api/v1/mcp-sessions`, { headers: bearer(keys.admin) })).json());
      expect(listed.sessions).toContainEqual(expect.objectContaining({ principal: 'admin@example.com', client: { name: 'e2e-inspector', version: '1.0.0' }, protocolVersion: expect.any(String) }));
      expect(listed.sessions.every((session) => session.id.length <= 9)).toBe(true);

      expect((await client.client.callTool({ name: 'beta__fail', arguments: {} })).isError).toBe(true);
      // Calls while the page watches /metrics, until alpha's latency shows in the chart.
      const latency = page.locator('.chart').nth(1).locator('.legend li', { hasText: /^alpha: [\d.]+ ms$/ });
      let calls = 0;
      await waitFor(
        async () => {
          await client.client.callTool({ name: 'alpha__echo', arguments: { text: `tick ${calls++}` } });
          await new Promise((r) => setTimeout(r, 300));
          return (await latency.count()) === 1;
        },
        30_000,
        "alpha's latency in the chart",
      );
      expect(await page.locator('.chart').first().locator('polyline').count()).toBeGreaterThan(0);

      await page.getByLabel('Status', { exact: true }).selectOption('error');
      await page.getByLabel('Server', { exact: true }).fill('beta');
      await page.getByRole('button', { name: 'Apply filters' }).click();
      const audit = page.getByRole('table', { name: /Audit events/ });
      // The filtered page replaces the unfiltered one (which held alpha's calls).
      await waitFor(async () => (await audit.getByRole('row', { name: /alpha__echo/ }).count()) === 0, 30_000, 'the filtered audit events');
      await audit.getByRole('row', { name: /beta__fail/ }).first().waitFor();
      const statuses = await audit.locator('tbody .badge').allTextContents();
      expect(statuses.length).toBeGreaterThan(0);
      expect(new Set(statuses)).toEqual(new Set(['error']));
      // A time window with nothing in it.
      await page.getByLabel('From', { exact: true }).fill(localMinute(Date.now() + 86_400_000));
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page.getByRole('status').filter({ hasText: 'No events.' }).waitFor();
      await page.getByRole('button', { name: 'Clear' }).click();
      await audit.getByRole('row', { name: /alpha__echo/ }).first().waitFor();
      expect(await unnamedControls(page)).toEqual([]);
      await screenshot(page, 'activity');
      expect(problems).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('shows a user only what their grants allow, and no admin action', async () => {
    const { page, problems } = await newPage();
    await signIn(page, keys.user);
    expect(await page.getByTestId('principal').textContent()).toBe('user@example.com');
    await serverRow(page, 'alpha').waitFor();
    expect(await page.locator('tr[data-server]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-server')))).toEqual(['alpha', 'beta']);
    expect(await page.getByRole('columnheader', { name: 'Actions' }).count()).toBe(0);
    expect(await page.getByRole('columnheader', { name: 'Last error' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Restart|Disable|Enable|Remove/ }).count()).toBe(0);
    expect(await page.getByRole('heading', { name: 'Register a server' }).count()).toBe(0);
    expect(await page.getByRole('navigation', { name: 'Console' }).getByRole('link').allTextContents()).toEqual(['Servers', 'Tools']);
    await screenshot(page, 'servers-user');

    // The admin page's address shows the servers page instead.
    await page.goto(`${origin}/ui/activity`);
    await serverRow(page, 'alpha').waitFor();
    expect(await page.getByRole('heading', { name: 'Open sessions' }).count()).toBe(0);

    await openTools(page);
    const tools = await search(page, 'echoes the text');
    expect(tools.filter((t) => t.endsWith('__echo')).sort()).toEqual(['alpha__echo', 'beta__echo']);
    expect(problems).toEqual([]);

    // The admin API behind the hidden parts refuses the user too.
    expect((await fetch(`${origin}/api/v1/mcp-sessions`, { headers: bearer(keys.user) })).status).toBe(403);
    expect((await fetch(`${origin}/api/v1/audit`, { headers: bearer(keys.user) })).status).toBe(403);
    expect((await fetch(`${origin}/api/v1/servers/alpha/restart`, { method: 'POST', headers: bearer(keys.user) })).status).toBe(403);
  });

  it('refuses a wrong key and signs out, forgetting the key', async () => {
    const { page, problems } = await newPage();
    await page.goto(`${origin}/ui/`);
    await page.getByLabel('API key or token').fill('cfx_not-a-real-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'does not accept' }).waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    // The browser reports the refused request itself; nothing else may be logged.
    expect(problems.filter((p) => !p.includes('status of 401'))).toEqual([]);

    await page.getByLabel('API key or token').fill(keys.user);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key or token').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
  });

  it('serves the console under a strict policy, with hashed assets cached and pages not', async () => {
    const index = await fetch(`${origin}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    );
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect(index.headers.get('referrer-policy')).toBe('no-referrer');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).toContain('<meta name="conflux-auth" content="required">');
    // Nothing inline for the policy to refuse.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=/);
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const asset = await fetch(`${origin}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    // Pages of the console are the index; a missing asset is not.
    expect(await (await fetch(`${origin}/ui/tools`)).text()).toBe(html);
    expect(await (await fetch(`${origin}/ui/index.html`)).text()).toBe(html);
    expect(await (await fetch(`${origin}/ui`)).text()).toBe(html);
    expect((await fetch(`${origin}/ui/assets/gone-1234.js`)).status).toBe(404);
    // The same Host guard as every route.
    expect((await gateway.conflux.app.request('/ui/', { headers: { host: 'rebind.example' } })).status).toBe(403);
    // The index page links to it.
    expect(((await (await fetch(`${origin}/`, { headers: { accept: 'application/json' } })).json()) as { links: Record<string, string> }).links.console).toBe('/ui');
  });

  it('opens without sign-in on a loopback gateway with auth: none, and serves it to this machine only', async () => {
    const { page, problems } = await newPage();
    await page.goto(`${openOrigin}/ui/`);
    expect(await page.getByTestId('principal').textContent()).toBe('local user (no authentication)');
    await serverRow(page, 'alpha').waitFor();
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    expect(await page.getByLabel('API key or token').count()).toBe(0);
    // An image result, shown from its data: URL (which the policy allows for images only).
    await openTools(page);
    await search(page, 'tiny image');
    await page.getByRole('button', { name: /^everything__get-tiny-image/ }).click();
    await page.getByRole('form', { name: 'Call everything__get-tiny-image' }).getByRole('button', { name: 'Call tool' }).click();
    const image = page.getByTestId('tool-result').getByRole('img', { name: 'Image result (image/png)' });
    await image.waitFor();
    // Decoded, not a broken image: the policy let it load.
    await waitFor(async () => ((await page.evaluate('document.querySelector("[data-testid=tool-result] img").naturalWidth')) as number) > 0, 10_000, 'the image decoded');
    expect(problems).toEqual([]);
    // A request that does not come from loopback (here: in-process, no peer address) is refused.
    expect((await open.conflux.app.request('http://127.0.0.1/ui/')).status).toBe(403);
  });

  it('shows the error of a call whose upstream is down, and the server down with its error, until an admin restarts it', async () => {
    const { page, problems } = await newPage();
    await page.goto(`${openOrigin}/ui/tools`);
    await search(page, 'exits the server process');
    await page.getByRole('button', { name: /^beta__crash/ }).click();
    const form = page.getByRole('form', { name: 'Call beta__crash' });
    await form.getByRole('button', { name: 'Call tool' }).click();
    expect(await page.getByTestId('tool-result').locator('.text-block').textContent()).toBe('crashing');
    await waitFor(async () => ((await (await fetch(`${openOrigin}/api/v1/servers/beta`)).json()) as { state: string }).state === 'down', 30_000, 'beta down');

    await form.getByRole('button', { name: 'Call tool' }).click();
    const failure = page.getByRole('alert').filter({ hasText: 'Call failed' });
    await failure.waitFor();
    expect(await failure.textContent()).toMatch(/^Call failed: .*beta.*\(502 upstream_unavailable\)$/);

    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Servers' }).click();
    const beta = serverRow(page, 'beta');
    await beta.locator('.state-down').waitFor();
    expect(await beta.locator('.last-error').textContent()).toMatch(/exit/);
    await beta.getByRole('button', { name: 'Restart beta' }).click();
    await page.getByRole('status').filter({ hasText: 'Restart beta: done' }).waitFor();
    await waitFor(async () => (await beta.locator('.badge').textContent()) === 'ready', 30_000, 'beta ready again in the page');
    // The browser reports the refused call itself (a 502); nothing else may be logged.
    expect(problems.filter((p) => !p.includes('status of 502'))).toEqual([]);
  });

  it('cannot be driven from a page of another origin', async () => {
    const target = openOrigin;
    const foreign = await foreignSite(`<!doctype html><title>elsewhere</title><iframe src="${target}/ui/"></iframe>
<script>
window.attempts = (async () => {
  const out = {};
  const attempt = async (name, run) => { try { out[name] = await run(); } catch (e) { out[name] = 'refused: ' + e.name; } };
  await attempt('read', async () => (await fetch('${target}/api/v1/servers')).status);
  await attempt('jsonCall', async () => (await fetch('${target}/api/v1/tools/alpha__echo/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"x"}' })).status);
  await attempt('plainCall', async () => (await fetch('${target}/api/v1/tools/alpha__echo/call', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"text":"x"}' })).type);
  await attempt('restart', async () => (await fetch('${target}/api/v1/servers/alpha/restart', { method: 'POST', mode: 'no-cors' })).type);
  return out;
})();
</script>`);
    const { page } = await newPage();
    const refusals = async () => (await open.conflux.metrics.httpRequests.get()).values.filter((v) => v.labels.status === '403').reduce((n, v) => n + v.value, 0);
    const refusedBefore = await refusals();
    try {
      await page.goto(`http://${FOREIGN_HOST}:${foreign.port}/`);
      // (Evaluated as text: the tests are compiled without the DOM's types.)
      const attempts = await page.evaluate('window.attempts');
      // The browser hands the page no answer, and the gateway refused each request: it did nothing.
      expect(attempts).toEqual({ read: 'refused: TypeError', jsonCall: 'refused: TypeError', plainCall: 'opaque', restart: 'opaque' });
      // The read, the JSON call's preflight, the plain call and the restart.
      await waitFor(async () => (await refusals()) - refusedBefore >= 4, 10_000, 'the gateway refusing the foreign requests');
      // The console cannot be framed by it either.
      expect(await page.frames().filter((f) => f !== page.mainFrame())[0]!.locator('header.top').count()).toBe(0);
      const audit = (await (await fetch(`${openOrigin}/api/v1/servers/alpha`)).json()) as { state: string };
      expect(audit.state).toBe('ready');
      expect(open.conflux.metrics.registry.getSingleMetric('mcp_tool_executions_total')).toBeDefined();
      const calls = await open.conflux.metrics.toolExecutions.get();
      expect(calls.values.filter((v) => v.labels.tool_id === 'alpha__echo')).toEqual([]);
    } finally {
      await foreign.close();
    }
  });
});

/** `when` as a datetime-local input takes it: the browser's local time (this process's, both being on this machine), to the minute. */
function localMinute(when: number): string {
  const date = new Date(when);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:${two(date.getMinutes())}`;
}

/** A site on another origin (FOREIGN_HOST, resolved to loopback by the browser) serving `html`. */
async function foreignSite(html: string): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

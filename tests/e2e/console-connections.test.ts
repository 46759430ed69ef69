import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startProtectedUpstream, type ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { builtConsole, chromiumAvailable, launchChromium, screenshot, watchedPage } from './browser.js';

const available = chromiumAvailable();

/**
 * A server that acts for each user (`auth.identity: user`): the console lists the signed-in
 * user's connection to it, and connecting walks the user, in a new tab, through the gateway's
 * confirmation page and a real authorization server, back to a connection the console shows.
 */
describe.skipIf(!available)("the web console's connections to per-user servers", () => {
  let idp: TestIdentityProvider;
  let upstream: ProtectedUpstream;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    const consoleDir = builtConsole();
    idp = await startIdentityProvider({ resources: [], accounts: { alice: { email: 'alice@example.com' } } });
    upstream = await startProtectedUpstream({ issuer: idp.issuer });
    idp.addResource(upstream.url);
    database = await freshPglite().open();
    gateway = await startGateway(
      testConfig(
        { docs: { url: upstream.url, auth: { method: 'oauth2', identity: 'user', scopes: ['mcp:tools'] }, description: 'Documents, as each user' } },
        { auth: { jwt: { secret: JWT_SECRET } }, access: { defaultLevel: 'call' } },
      ),
      { database, consoleDir },
    );
    origin = new URL(gateway.url).origin;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await database?.close();
    await upstream?.close();
    await idp?.close();
  });

  it('connects the signed-in user to the server through the authorization server, and revokes it', async () => {
    const token = await hs256Token({ sub: 'alice', email: 'alice@example.com' }, { expiresIn: '10m' });
    const { page, context, problems, close } = await watchedPage(browser);
    try {
      await page.goto(`${origin}/ui/`);
      await page.getByLabel('API key or token').fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      const connection = page.locator('li[data-connection="docs"]');
      await connection.getByText('not connected').waitFor();

      const opened = context.waitForEvent('page');
      await connection.getByRole('button', { name: 'Connect docs' }).click();
      const tab = await opened;
      await tab.getByRole('button', { name: 'Continue to sign in' }).click();
      await tab.getByRole('heading', { name: 'Connected' }).waitFor();
      await tab.close();

      await connection.getByRole('button', { name: 'Revoke docs' }).waitFor({ timeout: 30_000 });
      expect(await connection.textContent()).toMatch(/^docs connected/);
      const listed = (await (await fetch(`${origin}/api/v1/connections`, { headers: bearer(token) })).json()) as { connections: { server: string; user: string }[] };
      expect(listed.connections).toEqual([expect.objectContaining({ server: 'docs', user: 'alice@example.com' })]);
      await screenshot(page, 'connections');

      await connection.getByRole('button', { name: 'Revoke docs' }).click();
      await connection.getByText('not connected').waitFor();
      expect(((await (await fetch(`${origin}/api/v1/connections`, { headers: bearer(token) })).json()) as { connections: unknown[] }).connections).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});

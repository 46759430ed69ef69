import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdentityProvider, type TestIdentityProvider } from '../fixtures/oidc-provider.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { builtConsole, chromiumAvailable, launchChromium, screenshot, watchedPage } from './browser.js';

const available = chromiumAvailable();

/**
 * Signing in to the console with the gateway's OAuth authorization server (a real one, the
 * oidc-provider fixture): the authorization code flow with PKCE, the console registered as a
 * public client by the gateway, the access token kept in the tab.
 */
describe.skipIf(!available)('signing in to the web console with OAuth', () => {
  let idp: TestIdentityProvider;
  let gateway: RunningGateway;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    const consoleDir = builtConsole();
    idp = await startIdentityProvider({ resources: [], accounts: { alice: { email: 'alice@example.com' } } });
    gateway = await startGateway(
      testConfig({ alpha: stdioFixture('alpha') }, { auth: { oauth: { issuer: idp.issuer, scopes: ['mcp:tools'] } }, access: { defaultLevel: 'call' } }),
      { consoleDir },
    );
    origin = new URL(gateway.url).origin;
    // Tokens for the gateway name its /mcp resource, known once it listens.
    idp.addResource(`${origin}/mcp`);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await idp?.close();
  });

  it('signs a user in at the authorization server and back, with PKCE, and uses the token it grants', async () => {
    const index = await fetch(`${origin}/ui/`);
    expect(index.headers.get('content-security-policy')).toContain(`connect-src 'self' ${new URL(idp.tokenEndpoint).origin};`);
    const html = await index.text();
    expect(html).toContain('<meta name="conflux-auth" content="oauth">');
    expect(idp.registrations).toHaveLength(1);

    const { page, problems, close } = await watchedPage(browser);
    try {
      await page.goto(`${origin}/ui/tools`);
      await page.getByRole('button', { name: 'Sign in with the authorization server' }).click();
      await page.getByTestId('principal').waitFor();
      expect(await page.getByTestId('principal').textContent()).toBe('alice@example.com');
      // The code is gone from the address; the token is in the tab's storage only.
      expect(new URL(page.url()).search).toBe('');
      const token = (await page.evaluate('sessionStorage.getItem("conflux.credential")')) as string;
      expect(token.split('.')).toHaveLength(3);
      expect(await page.evaluate('localStorage.length')).toBe(0);
      expect(idp.tokenLog.at(-1)).toMatchObject({ grantType: 'authorization_code', clientId: idp.registrations[0], error: undefined });

      await page.locator('tr[data-server="alpha"]').getByText('ready').waitFor();
      await screenshot(page, 'signed-in-oauth');
      const me = (await (await fetch(`${origin}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as { method: string; principal: string };
      expect(me).toMatchObject({ method: 'oauth', principal: 'alice@example.com' });
      // One registration per origin the console is served at, not one per page.
      expect(idp.registrations).toHaveLength(1);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('shows no words of an answer it did not ask for, and offers sign-in again', async () => {
    const { page, problems, close } = await watchedPage(browser);
    try {
      // A link anyone can make, in the shape of the authorization server's refusal.
      await page.goto(`${origin}/ui/?error=access_denied&error_description=${encodeURIComponent('Call +1 555 0100 to unlock your account')}&state=x`);
      const alert = page.getByRole('alert').filter({ hasText: 'its state does not match' });
      await alert.waitFor();
      expect(await alert.textContent()).not.toContain('555');
      expect(await page.getByText('Call +1 555 0100').count()).toBe(0);
      expect(new URL(page.url()).search).toBe('');
      await page.getByRole('button', { name: 'Sign in with the authorization server' }).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});

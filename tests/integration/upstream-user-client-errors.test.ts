import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamTokenRepository } from '../../src/store/upstream-token-repository.js';
import { AuthorizationRequiredError } from '../../src/upstream/auth/authorization-required.js';
import { UpstreamAuthError } from '../../src/upstream/auth/upstream-auth.js';
import {
  authorise,
  authorizationOf,
  bearerOf,
  CALLBACK_BASE,
  principal,
  startUserIdentityWorld,
  userIdentityHarness,
  userServer,
  whoami,
  type UserIdentityWorld,
} from '../helpers/user-identity-harness.js';

const REDIRECT_URL = `${CALLBACK_BASE}/oauth/callback`;
const WRONG_SECRET = 'not-the-secret-of-this-client-0123456789';

/** A callback page's text as a user reads it (the page escapes what it shows). */
async function pageText(page: Response): Promise<string> {
  const html = await page.text();
  return html.replace(/<[^>]+>/g, ' ').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** What a call's credentials were refused with. */
async function refusal(promise: Promise<unknown>): Promise<UpstreamAuthError> {
  const error = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(UpstreamAuthError);
  return error as UpstreamAuthError;
}

/**
 * The authorization server refuses the gateway's own client (`invalid_client`: a wrong secret,
 * or a registration it no longer has) when a user's code is redeemed or a user's token
 * refreshed. The user is told that it is the gateway's client that was refused, on which
 * server, and not their own authorisation; a registration of the gateway's is dropped and made
 * again at the next authorization; other users' tokens stay as they are.
 */
describe("the authorization server refuses the gateway's client", { timeout: 120_000 }, () => {
  let world: UserIdentityWorld;
  let repository: UpstreamTokenRepository;
  /** A client an operator registered for the gateway's callback. */
  let preRegistered: { client_id: string; client_secret: string };

  beforeAll(async () => {
    world = await startUserIdentityWorld();
    repository = new UpstreamTokenRepository(world.database.db);
    const registered = await fetch(world.idp.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'conflux (pre-registered)', redirect_uris: [REDIRECT_URL], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' }),
    });
    expect(registered.status).toBe(201);
    preRegistered = (await registered.json()) as { client_id: string; client_secret: string };
  });
  afterAll(async () => {
    await world?.close();
  });

  /** The registration the gateway keeps for the provider, if any. */
  const storedRegistration = async () => {
    const row = await repository.client(world.idp.issuer, REDIRECT_URL);
    return row ? (row.metadata as { client_id: string }).client_id : undefined;
  };

  it('a configured client with a wrong secret: the callback names the server and the gateway\'s client, and stores nothing', async () => {
    const { idp, upstream, database, cipher } = world;
    const h = userIdentityHarness(database, cipher);
    const { config, oauth } = userServer(upstream.url, { clientId: preRegistered.client_id, clientSecret: WRONG_SECRET });
    const auth = h.users.authFor('tracker', config, oauth, { principal: principal('gus') });
    const required = await authorizationOf(auth);
    const browser = h.browser();
    const page = await browser.finish(idp, await browser.authorizationServerUrl(required.authorizationUrl), 'alice');

    expect(page.status).toBe(502);
    const text = await pageText(page);
    expect(text).toContain('The authorization server of "tracker" refused the gateway\'s client (invalid_client');
    expect(text).toContain('not your authorisation');
    expect(text).toContain('an operator');
    expect(text).not.toContain(WRONG_SECRET);
    expect(await required.connected(1000)).toBe(false);
    expect(await h.users.connections('gus')).toEqual([]);
    expect(idp.tokenLog.at(-1)).toMatchObject({ grantType: 'authorization_code', clientId: preRegistered.client_id, error: 'invalid_client' });
    // A configured client is the operator's: nothing of the gateway's own is dropped or registered.
    expect(idp.registrations).toEqual([preRegistered.client_id]);
  });

  it('a configured client whose secret is refused at a refresh: the user is told it is the gateway\'s client, and keeps their tokens', async () => {
    const { idp, upstream, database, cipher } = world;
    const h = userIdentityHarness(database, cipher);
    const right = userServer(upstream.url, { clientId: preRegistered.client_id, clientSecret: preRegistered.client_secret });
    const caller = { principal: principal('hal') };
    await authorise(idp, h, h.users.authFor('tracker', right.config, right.oauth, caller), 'alice');
    // The secret was rotated at the authorization server, and the gateway's configuration still has the old one.
    const wrong = userServer(upstream.url, { clientId: preRegistered.client_id, clientSecret: WRONG_SECRET });
    const auth = h.users.authFor('tracker', wrong.config, wrong.oauth, caller);
    h.advance(310_000); // past the token's end: only a refresh can serve
    const error = await refusal(auth.credentials());
    expect(error.kind).toBe('misconfigured');
    expect(error.server).toBe('tracker');
    expect(error.message).toContain('the authorization server of "tracker" refused the gateway\'s client (invalid_client');
    expect(error.message).toContain('not your authorisation');
    expect(error.message).not.toContain(WRONG_SECRET);
    expect(idp.tokenLog.at(-1)).toMatchObject({ grantType: 'refresh_token', clientId: preRegistered.client_id, error: 'invalid_client' });
    expect(h.refreshFailures).toEqual([`tracker@${new URL(idp.issuer).host}`]);
    // Their grant is intact: once the secret is right again, the refresh goes through.
    expect((await h.users.connections('hal')).map((c) => c.server)).toEqual(['tracker']);
    const fixed = h.users.authFor('tracker', right.config, right.oauth, caller);
    expect(await bearerOf(fixed)).toBeTruthy();
    expect(h.refreshes).toEqual(['tracker']);
  });

  it('a registration the authorization server no longer has, refused at the callback: dropped, and the next authorization registers again', async () => {
    const { idp, upstream, database, cipher } = world;
    const h = userIdentityHarness(database, cipher);
    const { config, oauth } = userServer(upstream.url);
    const auth = h.users.authFor('docs', config, oauth, { principal: principal('ivy') });
    const required = await authorizationOf(auth);
    const first = idp.registrations.at(-1)!;
    expect(await storedRegistration()).toBe(first);
    const browser = h.browser();
    const url = await browser.authorizationServerUrl(required.authorizationUrl);
    expect(url.searchParams.get('client_id')).toBe(first);
    const code = await idp.authorize(url, 'alice');
    await idp.deleteClient(first); // an operator removed it meanwhile
    const page = await browser.callback(url, { code, iss: idp.issuer });

    expect(page.status).toBe(502);
    const text = await pageText(page);
    expect(text).toContain('The authorization server of "docs" refused the gateway\'s client registration (invalid_client');
    expect(text).toContain('not your authorisation');
    expect(text).toContain('call again to authorise "docs" anew');
    expect(await storedRegistration()).toBeUndefined();
    expect(await h.users.connections('ivy')).toEqual([]);

    const again = await authorizationOf(auth);
    const second = idp.registrations.at(-1)!;
    expect(second).not.toBe(first);
    expect(await storedRegistration()).toBe(second);
    const page2 = await h.browser().authorize(idp, again.authorizationUrl, 'alice');
    expect(page2.status).toBe(200);
    expect(await whoami(upstream, auth)).toMatchObject({ sub: 'alice', client_id: second });
  });

  it("a registration refused at a refresh: the user is told, the registration is dropped and made again, and other users' tokens are untouched", async () => {
    const { idp, upstream, database, cipher } = world;
    const h = userIdentityHarness(database, cipher);
    const { config, oauth } = userServer(upstream.url);
    const asJo = h.users.authFor('wiki', config, oauth, { principal: principal('jo') });
    const asKit = h.users.authFor('wiki', config, oauth, { principal: principal('kit') });
    await authorise(idp, h, asJo, 'alice');
    await authorise(idp, h, asKit, 'bob');
    const refused = (await storedRegistration())!;
    const kitsRow = await repository.token('kit', 'wiki');
    await idp.deleteClient(refused);

    h.advance(280_000); // within the renewal margin: Jo's next request refreshes
    const error = await refusal(asJo.credentials());
    expect(error).not.toBeInstanceOf(AuthorizationRequiredError);
    expect(error.server).toBe('wiki');
    expect(error.message).toContain('the authorization server of "wiki" refused the gateway\'s client registration (invalid_client');
    expect(error.message).toContain('not your authorisation');
    expect(idp.tokenLog.at(-1)).toMatchObject({ grantType: 'refresh_token', clientId: refused, error: 'invalid_client' });
    // Dropped: the registration, and Jo's tokens (their refresh token was the refused client's).
    expect(await storedRegistration()).toBeUndefined();
    expect(await h.users.connections('jo')).toEqual([]);
    // Kit's tokens are as they were.
    expect(await repository.token('kit', 'wiki')).toEqual(kitsRow);

    // Jo's next call registers the gateway again and asks Jo to authorise with it.
    const registrations = idp.registrations.length;
    const again = await authorizationOf(asJo);
    expect(idp.registrations.length).toBe(registrations + 1);
    const renewed = idp.registrations.at(-1)!;
    expect(await storedRegistration()).toBe(renewed);
    expect((await h.browser().authorize(idp, again.authorizationUrl, 'alice')).status).toBe(200);
    expect(await whoami(upstream, asJo)).toMatchObject({ sub: 'alice', client_id: renewed });

    // Kit's refresh token was the refused client's too: his refresh (as the new registration) is refused, and he is asked again.
    await expect(asKit.credentials()).rejects.toBeInstanceOf(AuthorizationRequiredError);
    expect(idp.tokenLog.at(-1)).toMatchObject({ grantType: 'refresh_token', clientId: renewed, error: 'invalid_grant' });
    expect(await storedRegistration()).toBe(renewed);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamAuth } from '../../src/upstream/auth/upstream-auth.js';
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
  type UserIdentityHarness,
  type UserIdentityWorld,
} from '../helpers/user-identity-harness.js';

const METADATA_URL = 'https://conflux.example/oauth/client-metadata.json';
const REDIRECT_URL = `${CALLBACK_BASE}/oauth/callback`;

/** The gateway's client ID metadata document, as it would publish it at METADATA_URL. */
const METADATA_DOCUMENT = {
  client_id: METADATA_URL,
  client_name: 'Conflux (test)',
  redirect_uris: [REDIRECT_URL],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

/** The `client_id` of the authorization request the gateway sends the user's browser to. */
async function authorizationClientId(h: UserIdentityHarness, auth: UpstreamAuth): Promise<string | null> {
  const required = await authorizationOf(auth);
  return (await h.browser().authorizationServerUrl(required.authorizationUrl)).searchParams.get('client_id');
}

/**
 * How the gateway identifies itself to a user's authorization server (MCP authorization,
 * 2025-11-25, "Client Registration"): a pre-registered client first, then a Client ID Metadata
 * Document where the authorization server says it takes one
 * (`client_id_metadata_document_supported`), then dynamic registration (RFC 7591). Each case is
 * judged by what the authorization server received: the authorization request's `client_id`,
 * the registrations made, and the client of each token request.
 */
describe('client ID metadata documents for users\' authorisations', { timeout: 120_000 }, () => {
  let world: UserIdentityWorld;

  beforeAll(async () => {
    world = await startUserIdentityWorld({ provider: { clientMetadataDocuments: { [METADATA_URL]: METADATA_DOCUMENT } } });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('the authorization server says it takes client ID metadata documents', async () => {
    const metadata = (await (await fetch(`${world.idp.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.client_id_metadata_document_supported).toBe(true);
    expect(metadata.registration_endpoint).toBe(world.idp.registrationEndpoint);
  });

  it('uses the metadata URL as client_id, registers nothing, and redeems the code and refreshes as it', async () => {
    const { idp, upstream, database, cipher } = world;
    const h = userIdentityHarness(database, cipher);
    const { config, oauth } = userServer(upstream.url, { clientMetadataUrl: METADATA_URL });
    const auth = h.users.authFor('documented', config, oauth, { principal: principal('ann') });
    const registrationsBefore = idp.registrations.length;

    expect(await authorizationClientId(h, auth)).toBe(METADATA_URL);
    await authorise(idp, h, auth, 'alice');
    expect(idp.registrations.length).toBe(registrationsBefore);
    expect(idp.tokenLog.filter((entry) => entry.grantType === 'authorization_code').at(-1)).toEqual({ grantType: 'authorization_code', clientId: METADATA_URL, error: undefined });
    expect(await whoami(upstream, auth)).toMatchObject({ sub: 'alice', client_id: METADATA_URL });

    const first = await bearerOf(auth);
    h.advance(280_000); // 20 s of the provider's 300 s left: within the renewal margin
    expect(await bearerOf(auth)).not.toBe(first);
    expect(h.refreshes).toEqual(['documented']);
    expect(idp.tokenLog.filter((entry) => entry.grantType === 'refresh_token').at(-1)).toEqual({ grantType: 'refresh_token', clientId: METADATA_URL, error: undefined });
  });

  it('goes in the spec\'s order: a configured clientId, then the metadata document, then a registration', async () => {
    const { idp, upstream, database, cipher } = world;
    // A client an operator registered beforehand, for the gateway's callback.
    const registered = await fetch(idp.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'conflux (pre-registered)', redirect_uris: [REDIRECT_URL], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' }),
    });
    expect(registered.status).toBe(201);
    const preRegistered = (await registered.json()) as { client_id: string; client_secret: string };
    const h = userIdentityHarness(database, cipher);
    const registrationsBefore = idp.registrations.length;

    // 1. Configured: the metadata URL configured beside it is not used.
    const configured = userServer(upstream.url, { clientId: preRegistered.client_id, clientSecret: preRegistered.client_secret, clientMetadataUrl: METADATA_URL });
    const asConfigured = h.users.authFor('configured', configured.config, configured.oauth, { principal: principal('cy') });
    expect(await authorizationClientId(h, asConfigured)).toBe(preRegistered.client_id);
    await authorise(idp, h, asConfigured, 'alice');
    expect(idp.tokenLog.at(-1)).toEqual({ grantType: 'authorization_code', clientId: preRegistered.client_id, error: undefined });
    expect(idp.registrations.length).toBe(registrationsBefore);

    // 3. Neither: the gateway registers (once for this authorization server; the registration is kept).
    const plain = userServer(upstream.url);
    const asPlain = h.users.authFor('plain', plain.config, plain.oauth, { principal: principal('dot') });
    const dynamic = await authorizationClientId(h, asPlain);
    expect(idp.registrations.length).toBe(registrationsBefore + 1);
    expect(dynamic).toBe(idp.registrations.at(-1));
    await authorise(idp, h, asPlain, 'bob');
    expect(idp.tokenLog.at(-1)).toEqual({ grantType: 'authorization_code', clientId: dynamic, error: undefined });

    // 2. The metadata document, though a registration is stored for this authorization server: it comes first.
    const documented = userServer(upstream.url, { clientMetadataUrl: METADATA_URL });
    const asDocumented = h.users.authFor('documented-too', documented.config, documented.oauth, { principal: principal('dot') });
    expect(await authorizationClientId(h, asDocumented)).toBe(METADATA_URL);
    await authorise(idp, h, asDocumented, 'bob');
    expect(idp.tokenLog.at(-1)).toEqual({ grantType: 'authorization_code', clientId: METADATA_URL, error: undefined });
    expect(idp.registrations.length).toBe(registrationsBefore + 1);

    // The registration still serves the server that uses it: its users' refreshes are made as that client.
    h.advance(280_000);
    await bearerOf(asPlain);
    expect(idp.tokenLog.filter((entry) => entry.grantType === 'refresh_token').at(-1)).toEqual({ grantType: 'refresh_token', clientId: dynamic, error: undefined });
    expect((await h.users.connections('dot')).map((c) => c.server).sort()).toEqual(['documented-too', 'plain']);
    expect(await whoami(world.upstream, asPlain)).toMatchObject({ sub: 'bob', client_id: dynamic });
  });
});

describe('a metadata URL where the authorization server takes no metadata documents', { timeout: 120_000 }, () => {
  let world: UserIdentityWorld;

  beforeAll(async () => {
    world = await startUserIdentityWorld();
  });
  afterAll(async () => {
    await world?.close();
  });

  it('falls back to dynamic registration', async () => {
    const { idp, upstream, database, cipher } = world;
    const metadata = (await (await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.client_id_metadata_document_supported).toBeUndefined();
    const h = userIdentityHarness(database, cipher);
    const { config, oauth } = userServer(upstream.url, { clientMetadataUrl: METADATA_URL });
    const auth = h.users.authFor('documented', config, oauth, { principal: principal('eli') });
    const clientId = await authorizationClientId(h, auth);
    expect(idp.registrations).toEqual([clientId]);
    await authorise(idp, h, auth, 'alice');
    expect(idp.tokenLog.at(-1)).toEqual({ grantType: 'authorization_code', clientId, error: undefined });
    expect(await whoami(upstream, auth)).toMatchObject({ sub: 'alice', client_id: clientId });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, hs256Token, initializeRequest, JWT_SECRET } from '../helpers/auth.js';
import { startGateway, testConfig, type RunningGateway } from '../helpers/gateway.js';

const LIMIT = 2;
const jwtAuth = { jwt: { secret: JWT_SECRET, issuer: 'platform' } };
const throttled = { failedAuthPerAddress: LIMIT, windowSeconds: 60 };

const badToken = () => hs256Token({ sub: 'mallory', iss: 'platform' }, { secret: 'a-guessed-secret-that-is-long-enough-00000' });
const from = (forwardedFor: string, headers: Record<string, string> = {}) => ({ 'x-forwarded-for': forwardedFor, ...headers });

async function errorMessage(response: Response): Promise<string> {
  return ((await response.json()) as { error: { message: string } }).error.message;
}

describe('behind a trusted proxy, failed authentications count against the forwarded client', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({}, { auth: jwtAuth, trustedProxies: ['127.0.0.1'], rateLimit: throttled }));
  });
  afterAll(async () => gateway?.stop());

  it('throttles each forwarded client separately, and a spoofed left-most entry changes nothing', async () => {
    const bad = bearer(await badToken());
    for (let i = 0; i < LIMIT; i++) expect((await initializeRequest(gateway.url, from('203.0.113.1', bad))).status).toBe(401);
    const refused = await initializeRequest(gateway.url, from('203.0.113.1', bad));
    expect(refused.status).toBe(429);
    expect(await errorMessage(refused)).toContain('failed authentications from 203.0.113.1');

    // Another client behind the same proxy still has its own budget.
    expect((await initializeRequest(gateway.url, from('203.0.113.2', bad))).status).toBe(401);
    const valid = bearer(await hs256Token({ sub: 'alice', iss: 'platform' }));
    expect((await initializeRequest(gateway.url, from('203.0.113.2', valid))).status).toBe(200);

    // The throttled client writes another address first; the proxy appends the real one.
    const spoofed = await initializeRequest(gateway.url, from('198.51.100.99, 203.0.113.1', valid));
    expect(spoofed.status).toBe(429);
    expect(await errorMessage(spoofed)).toContain('failed authentications from 203.0.113.1');
    // The proxy's own address was never counted.
    expect((await initializeRequest(gateway.url, valid)).status).toBe(200);
  });

  it('counts a malformed X-Forwarded-For against the proxy', async () => {
    const bad = bearer(await badToken());
    for (let i = 0; i < LIMIT; i++) expect((await initializeRequest(gateway.url, from('unknown', bad))).status).toBe(401);
    const refused = await initializeRequest(gateway.url, from('203.0.113.3', bad));
    expect(refused.status).toBe(401);
    const proxyRefused = await initializeRequest(gateway.url, bad);
    expect(proxyRefused.status).toBe(429);
    expect(await errorMessage(proxyRefused)).toContain('failed authentications from 127.0.0.1');
  });
});

describe('without trusted proxies', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({}, { auth: jwtAuth, rateLimit: throttled }));
  });
  afterAll(async () => gateway?.stop());

  it('ignores X-Forwarded-For: every failure counts against the peer', async () => {
    const bad = bearer(await badToken());
    expect((await initializeRequest(gateway.url, from('203.0.113.1', bad))).status).toBe(401);
    expect((await initializeRequest(gateway.url, from('203.0.113.2', bad))).status).toBe(401);
    const refused = await initializeRequest(gateway.url, from('203.0.113.3', bad));
    expect(refused.status).toBe(429);
    expect(await errorMessage(refused)).toContain('failed authentications from 127.0.0.1');
  });
});

describe('with auth: none behind a trusted proxy', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({}, { trustedProxies: ['127.0.0.0/8'], rateLimit: { perPrincipal: 1, windowSeconds: 60 } }));
  });
  afterAll(async () => gateway?.stop());

  it('keys the per-address rate limit on the forwarded client', async () => {
    expect((await initializeRequest(gateway.url, from('203.0.113.1'))).status).toBe(200);
    expect((await initializeRequest(gateway.url, from('198.51.100.7, 203.0.113.1'))).status).toBe(429);
    expect((await initializeRequest(gateway.url, from('203.0.113.2'))).status).toBe(200);
  });
});

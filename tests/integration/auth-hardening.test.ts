import { startHungServer } from '../helpers/redis.js';
import { Writable } from 'node:stream';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys } from '../../src/auth/api-keys.js';
import { Authenticator } from '../../src/auth/authenticator.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { ApiKeyRepository } from '../../src/store/api-key-repository.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { bearer, clientWithHeaders, hs256Token, initializeRequest, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite, freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { connectClient, freePort, startGateway, stdioFixture, testConfig, waitFor, type RunningGateway } from '../helpers/gateway.js';

type LogLine = { level: number; msg: string; address?: string; component?: string };

function capturedLogger(): { logger: Logger; lines: LogLine[]; about: (text: string) => LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines, about: (text) => lines.filter((l) => l.msg.includes(text)) };
}

async function running(conflux: Conflux): Promise<{ url: string; base: string }> {
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  await conflux.upstreams.settled(15_000);
  return { url, base: url.replace(/\/mcp$/, '') };
}

const jwtAuth = { jwt: { secret: JWT_SECRET, issuer: 'platform' } };

describe('HS256 tokens must expire, within the configured lifetime', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { auth: jwtAuth, access: { defaultLevel: 'call' } }));
  }, 30_000);
  afterAll(async () => gateway?.stop());

  it('refuses a correctly signed token without exp, naming the claim', async () => {
    const forever = await new SignJWT({ sub: 'u1', iss: 'platform' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(new TextEncoder().encode(JWT_SECRET));
    const response = await initializeRequest(gateway.url, bearer(forever));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain(`error_description="the token has no 'exp' claim: tokens must expire"`);
  });

  it('refuses a token valid for ten years, naming the lifetime limit', async () => {
    const response = await initializeRequest(gateway.url, bearer(await hs256Token({ sub: 'u1', iss: 'platform' }, { expiresIn: '3650d' })));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('exceeds the limit of 86400s (gateway.auth.jwt.maxLifetimeSeconds)');
    const withoutIat = await new SignJWT({ sub: 'u1', iss: 'platform' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('3650d')
      .sign(new TextEncoder().encode(JWT_SECRET));
    expect((await initializeRequest(gateway.url, bearer(withoutIat))).headers.get('www-authenticate')).toContain('gateway.auth.jwt.maxLifetimeSeconds');
  });

  it('accepts a token with a normal lifetime, and the principal carries when it ends', async () => {
    const token = await hs256Token({ sub: 'u1', email: 'U1@Example.com', iss: 'platform' }, { expiresIn: '1h' });
    const { client, close } = await clientWithHeaders(gateway.url, bearer(token));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('alpha__echo');
    } finally {
      await close();
    }
    const authenticator = new Authenticator(gateway.conflux.config.gateway.auth, { logger: silentLogger() });
    const principal = await authenticator.authenticate({ headers: new Headers(bearer(token)), address: '127.0.0.1', resource: gateway.url });
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    expect(principal).toMatchObject({ id: 'u1@example.com', email: 'U1@Example.com', expiresAt: exp * 1000, method: 'jwt' });
  });
});

describe('failed authentications are throttled per client address', () => {
  const LIMIT = 5;
  let conflux: Conflux;
  let url: string;
  let base: string;
  let log: ReturnType<typeof capturedLogger>;
  beforeAll(async () => {
    log = capturedLogger();
    conflux = createConflux(
      testConfig({ alpha: stdioFixture('alpha') }, { auth: jwtAuth, access: { defaultLevel: 'call' }, rateLimit: { failedAuthPerAddress: LIMIT, windowSeconds: 60 } }),
      { logger: log.logger },
    );
    ({ url, base } = await running(conflux));
  }, 30_000);
  afterAll(async () => conflux?.stop());

  it('answers 429 with Retry-After after the limit, on /mcp and /api/v1, even to a valid token', async () => {
    const badToken = await hs256Token({ sub: 'mallory', iss: 'platform' }, { secret: 'a-guessed-secret-that-is-long-enough-00000' });
    for (let i = 0; i < LIMIT; i++) expect((await initializeRequest(url, bearer(badToken))).status).toBe(401);

    const mcp = await initializeRequest(url, bearer(badToken));
    expect(mcp.status).toBe(429);
    expect(Number(mcp.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(mcp.headers.get('www-authenticate')).toBeNull();
    expect(await mcp.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('failed authentications from 127.0.0.1') } });

    const rest = await fetch(`${base}/api/v1/me`, { headers: bearer(badToken) });
    expect(rest.status).toBe(429);
    expect(Number(rest.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await rest.json()).toMatchObject({ error: { code: 'rate_limited', details: { scope: 'address' } } });

    // A valid token from the throttled address is refused too: telling it apart would need the
    // very credential check the throttle withholds, and a different answer would confirm a guess.
    const valid = await hs256Token({ sub: 'alice', iss: 'platform' });
    expect((await initializeRequest(url, bearer(valid))).status).toBe(429);
    expect((await fetch(`${base}/api/v1/me`, { headers: bearer(valid) })).status).toBe(429);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('conflux_auth_throttled_total 4');
    expect(metrics).toContain(`conflux_auth_failures_total{status="401",reason="invalid_token"} ${LIMIT}`);
    // Sampled: the first failure of the window, and the start of the throttling; never the token.
    expect(log.about('authentication failed')).toHaveLength(1);
    expect(log.about('too many failed authentications')).toHaveLength(1);
    expect(JSON.stringify(log.lines)).not.toContain(badToken.split('.')[2]);
  });
});

describe('failed authentications through a trusted proxy', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(
      testConfig({ alpha: stdioFixture('alpha') }, { auth: { ...jwtAuth, trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, rateLimit: { failedAuthPerAddress: 2 } }),
    );
  }, 30_000);
  afterAll(async () => gateway?.stop());

  it('are not held against the proxy, whose address stands for many clients', async () => {
    const badToken = await hs256Token({ sub: 'mallory', iss: 'platform' }, { secret: 'a-guessed-secret-that-is-long-enough-00000' });
    for (let i = 0; i < 5; i++) expect((await initializeRequest(gateway.url, bearer(badToken))).status).toBe(401);
    expect((await initializeRequest(gateway.url, { 'x-user-email': 'dana@example.com' })).status).toBe(200);
  });
});

describe('a flood of refused requests', () => {
  let conflux: Conflux;
  let url: string;
  let base: string;
  let log: ReturnType<typeof capturedLogger>;
  beforeAll(async () => {
    log = capturedLogger();
    conflux = createConflux(testConfig({ alpha: stdioFixture('alpha') }, { auth: jwtAuth, rateLimit: { failedAuthPerAddress: 20 } }), { logger: log.logger });
    ({ url, base } = await running(conflux));
  }, 30_000);
  afterAll(async () => conflux?.stop());

  it('does not stall /health, and is logged in a few lines', async () => {
    const badToken = await hs256Token({ sub: 'mallory', iss: 'platform' }, { secret: 'a-guessed-secret-that-is-long-enough-00000' });
    const flood = Array.from({ length: 400 }, () => initializeRequest(url, bearer(badToken)).then((r) => r.status));
    const health: number[] = [];
    for (let i = 0; i < 5; i++) health.push((await fetch(`${base}/health`)).status);
    const statuses = await Promise.all(flood);
    expect(health).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(statuses)).toEqual(new Set([401, 429]));
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(20);
    expect(log.about('authentication failed').length).toBe(1);
    expect(log.about('too many failed authentications').length).toBe(1);
  });
});

const hasPostgres = await postgresAvailable();

describe('API key principals and their validity', () => {
  let store: TestDatabase;
  let database: OpenedDatabase;
  let keys: ApiKeys;
  beforeAll(async () => {
    store = hasPostgres ? await freshPostgres() : freshPglite();
    database = await store.open();
    await database.migrate();
    keys = new ApiKeys(new ApiKeyRepository(database.db));
  }, 30_000);
  afterAll(async () => {
    await database?.close();
    await store?.dispose();
  });

  it('names the key and its expiry on the principal, answers isActive, and announces revocations made here', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000);
    const created = await keys.create({ name: 'ci', subject: 'CI-Bot@Example.com', groups: ['bots'], expiresAt });
    const principal = await keys.verify(created.key);
    expect(principal).toMatchObject({ id: 'ci-bot@example.com', subject: 'CI-Bot@Example.com', apiKeyId: created.record.id, expiresAt: expiresAt.getTime(), method: 'api_key' });
    expect(await keys.isActive(created.record.id)).toBe(true);

    const revoked: string[] = [];
    const unsubscribe = keys.onRevoked((id) => revoked.push(id));
    await keys.revoke('ci');
    expect(revoked).toEqual([created.record.id]);
    expect(await keys.isActive(created.record.id)).toBe(false);
    unsubscribe();
    const other = await keys.create({ name: 'other' });
    await keys.revoke(other.record.id);
    expect(revoked).toEqual([created.record.id]);

    const old = await keys.create({ name: 'old', expiresAt: new Date(Date.now() - 1000) });
    expect(await keys.isActive(old.record.id)).toBe(false);
    expect(await keys.isActive('nosuchkey123')).toBe(false);
    const forever = await keys.create({ name: 'forever' });
    expect(await keys.isActive(forever.record.id)).toBe(true);
    expect((await keys.verify(forever.key)) as object).not.toHaveProperty('expiresAt');
  });
});

describe('Redis does not answer', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function hungPort(): Promise<number> {
    const hung = await startHungServer();
    closers.push(() => hung.close());
    return hung.port;
  }

  async function gatewayOn(port: number, rateLimit: Record<string, unknown>) {
    const log = capturedLogger();
    let errors = 0;
    const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 25 });
    redis.on('error', () => errors++);
    closers.push(() => redis.disconnect());
    const conflux = createConflux(testConfig({ alpha: stdioFixture('alpha') }, { rateLimit }), { logger: log.logger, redis });
    closers.push(() => conflux.stop());
    const { url, base } = await running(conflux);
    return { url, base, log, errors: () => errors };
  }

  it('failClosed: refuses with 503 and the code on /mcp and the REST API, /ready says so, /health stays up', async () => {
    const { url, base, log, errors } = await gatewayOn(await freePort(), { perPrincipal: 1000, onRedisError: 'failClosed' });
    for (let i = 0; i < 3; i++) {
      const mcp = await initializeRequest(url);
      expect(mcp.status).toBe(503);
      expect(await mcp.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('rate limiter (Redis) does not answer') } });
      const rest = await fetch(`${base}/api/v1/servers`);
      expect(rest.status).toBe(503);
      expect(await rest.json()).toMatchObject({ error: { code: 'rate_limiter_unavailable' } });
    }
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, redis: 'unavailable' });
    expect((await fetch(`${base}/health`)).status).toBe(200);
    await waitFor(() => errors() >= 5, 10_000, 'several reconnect attempts');
    expect(log.about('does not answer')).toHaveLength(1);
    expect(log.lines.filter((l) => l.level >= 50)).toEqual([]); // nothing logged as an unhandled error
  });

  it('failClosed on a hung Redis: a tool call is refused as a limit, not as an internal error', async () => {
    const { url, log } = await gatewayOn(await hungPort(), { perServer: 1000, onRedisError: 'failClosed' });
    const client = await connectClient(url);
    try {
      const call = client.client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } });
      await expect(call).rejects.toBeInstanceOf(McpError);
      await expect(call).rejects.toMatchObject({ code: -32000, message: expect.stringContaining('rate limiter (Redis) does not answer') });
    } finally {
      await client.close();
    }
    expect(log.about('does not answer')).toHaveLength(1);
  });

  it('failOpen on a hung Redis: requests pass, /ready reports Redis but stays ready', async () => {
    const { url, base, log } = await gatewayOn(await hungPort(), { perPrincipal: 1000, perServer: 1000, onRedisError: 'failOpen' });
    const client = await connectClient(url);
    try {
      for (let i = 0; i < 3; i++) expect(await client.client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } })).toEqual({ content: [{ type: 'text', text: 'alpha: hi' }] });
    } finally {
      await client.close();
    }
    expect((await fetch(`${base}/api/v1/servers`)).status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, redis: 'unavailable' });
    expect(log.about('does not answer')).toHaveLength(1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/conflux_rate_limiter_unavailable_total\{outcome="allowed"\} [1-9]/);
  });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConflux } from '../../src/conflux.js';
import { bearer, clientWithHeaders, hs256Token, initializeRequest, JWT_SECRET } from '../helpers/auth.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { ROOT, startGateway, stdioFixture, testConfig, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { scaled } from '../helpers/load-scale.js';
import type { OpenedDatabase } from '../../src/store/database.js';

const CLI = join(ROOT, 'src/cli.ts');

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...nodeArgs(CLI), ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}

const hasPostgres = await postgresAvailable();

describe.skipIf(!hasPostgres)('API keys from the CLI, on PostgreSQL', () => {
  let store: TestDatabase;
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = await freshPostgres();
    database = await store.open();
    await database.migrate();
    const dir = await mkdtemp(join(tmpdir(), 'conflux-keys-'));
    const configPath = join(dir, 'mcp-servers.yaml');
    await writeFile(configPath, 'servers: {}\n');
    env = { DATABASE_URL: store.url!, CONFLUX_CONFIG: configPath };
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { auth: { apiKeys: true }, access: { grants: [{ group: 'bots', servers: ['alpha'] }], refreshSeconds: 0.2 } }), { database });
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await store?.dispose();
  });

  it('creates a key shown once, accepts it as Bearer or X-API-Key, and refuses it once revoked', async () => {
    const created = await cli(['keys', 'create', 'nightly', '--group', 'bots', '--expires', '30d'], env);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^cfx_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toContain('It is not shown again');

    for (const headers of [bearer(key), { 'x-api-key': key }]) {
      const { client, close } = await clientWithHeaders(gateway.url, headers);
      try {
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('alpha__echo');
      } finally {
        await close();
      }
    }
    const listed = await cli(['keys', 'list'], env);
    expect(listed.stdout).toMatch(/nightly\tkey:nightly\tbots\tactive/);
    expect(listed.stdout).not.toContain(key);
    // Only a hash is stored.
    const rows = await database.db.execute<{ hash: string }>('select hash from api_keys');
    // The secret follows `cfx_<12-character id>_`; it may itself contain underscores.
    expect(JSON.stringify(rows)).not.toContain(key.slice('cfx_'.length + 13));

    expect((await cli(['keys', 'create', 'nightly'], env)).code).not.toBe(0); // the name is taken while active
    const revoked = await cli(['keys', 'revoke', 'nightly'], env);
    expect(revoked.code).toBe(0);
    // Revoked from another process: refused within the gateway's one-second verification cache.
    let after = await initializeRequest(gateway.url, bearer(key));
    const deadline = Date.now() + scaled(3000);
    while (after.status !== 401 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await initializeRequest(gateway.url, bearer(key));
    }
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('API key revoked');
    const wrong = await initializeRequest(gateway.url, bearer(`${key.slice(0, -1)}x`));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('unknown API key');
  });

  it('refuses an expired key', async () => {
    const expired = await gateway.conflux.apiKeys!.create({ name: 'old', expiresAt: new Date(Date.now() - 1000) });
    const response = await fetch(gateway.url.replace(/\/mcp$/, '/api/v1/me'), { headers: { 'x-api-key': expired.key } });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { message: string } }).error.message).toBe('API key expired');
  });

  it('manages grants from the CLI; a running gateway picks them up', async () => {
    const late = await gateway.conflux.apiKeys!.create({ name: 'late' });
    const me = async () => ((await (await fetch(gateway.url.replace(/\/mcp$/, '/api/v1/me'), { headers: bearer(late.key) })).json()) as { servers: Record<string, string> }).servers;
    expect(await me()).toEqual({});
    const granted = await cli(['access', 'grant', '--user', 'key:late', '--server', 'alpha', '--level', 'read'], env);
    expect(granted.code).toBe(0);
    expect(granted.stdout).toMatch(/^grant \d+: user key:late may read on alpha/);
    expect((await cli(['access', 'grant', '--server', 'alpha'], env)).code).toBe(2);
    const list = await cli(['access', 'list'], env);
    expect(list.stdout).toContain('user:key:late\talpha\tread');
    await waitFor(async () => (await me()).alpha === 'read', 5000, 'the grant to reach the running gateway');
  });
});

describe('HS256 shared-secret JWTs', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { auth: { jwt: { secret: JWT_SECRET, issuer: 'open-webui' } }, access: { defaultLevel: 'call' } }));
  }, 30_000);
  afterAll(async () => gateway?.stop());

  it('accepts a valid token and names the problem with a bad one', async () => {
    const good = await clientWithHeaders(gateway.url, bearer(await hs256Token({ sub: 'u1', email: 'u1@example.com', iss: 'open-webui' })));
    try {
      expect((await good.client.listTools()).tools.map((t) => t.name)).toContain('alpha__echo');
    } finally {
      await good.close();
    }
    const cases: [string, string][] = [
      [await hs256Token({ sub: 'u1', iss: 'open-webui' }, { secret: 'another-secret-of-sufficient-length-000000' }), 'signature is invalid'],
      [await hs256Token({ sub: 'u1', iss: 'open-webui' }, { expiresIn: Math.floor(Date.now() / 1000) - 120 }), 'expired'],
      [await hs256Token({ sub: 'u1', iss: 'someone-else' }), "'iss' claim"],
      [await hs256Token({ iss: 'open-webui' }), "no 'sub' claim"],
    ];
    for (const [token, problem] of cases) {
      const response = await initializeRequest(gateway.url, bearer(token));
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain(problem);
    }
    const missing = await initializeRequest(gateway.url);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="conflux"');
    const basic = await initializeRequest(gateway.url, { authorization: 'Basic dXNlcjpwYXNz' });
    expect(basic.status).toBe(401);
    expect(basic.headers.get('www-authenticate')).toContain('invalid_request');
    const metrics = await (await fetch(gateway.url.replace(/\/mcp$/, '/metrics'))).text();
    expect(metrics).toContain('conflux_auth_failures_total{status="401",reason="invalid_token"} 4');
    expect(metrics).toContain('conflux_auth_failures_total{status="401",reason="missing"} 1');
  });
});

describe('trusted identity headers', () => {
  const headers = { 'x-user-email': 'dana@example.com', 'x-user-groups': 'ops, MCP-Admin', 'x-user-admin': 'false' };
  let trusted: RunningGateway;
  let untrusted: RunningGateway;
  beforeAll(async () => {
    trusted = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } } }));
    untrusted = await startGateway(testConfig({ alpha: stdioFixture('alpha') }, { auth: { trustedHeaders: { proxies: ['10.0.0.0/8'] } } }));
  }, 30_000);
  afterAll(async () => {
    await trusted?.stop();
    await untrusted?.stop();
  });

  it('honours the headers from a trusted proxy address', async () => {
    const me = (await (await fetch(trusted.url.replace(/\/mcp$/, '/api/v1/me'), { headers })).json()) as Record<string, unknown>;
    expect(me).toMatchObject({ principal: 'dana@example.com', groups: ['ops', 'MCP-Admin'], method: 'header', admin: true });
    const { client, close } = await clientWithHeaders(trusted.url, headers);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('alpha__echo');
    } finally {
      await close();
    }
  });

  it('refuses the same headers from an address that is not a trusted proxy', async () => {
    const spoofed = await initializeRequest(untrusted.url, headers);
    expect(spoofed.status).toBe(401);
    expect(spoofed.headers.get('www-authenticate')).toContain('honoured only from trusted proxies');
    const api = await fetch(untrusted.url.replace(/\/mcp$/, '/api/v1/me'), { headers });
    expect(api.status).toBe(401);
  });
});

describe('auth: none', () => {
  it('warns loudly when listening beyond loopback, and not on loopback', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    for (const host of ['127.0.0.1', '0.0.0.0']) {
      const conflux = createConflux(testConfig({}), { logger: pino({ level: 'warn' }, sink) });
      await conflux.start();
      await conflux.listen(host, 0);
      await conflux.stop();
      const warned = lines.some((l) => l.includes('AUTHENTICATION IS OFF'));
      expect(warned).toBe(host === '0.0.0.0');
    }
  });
});

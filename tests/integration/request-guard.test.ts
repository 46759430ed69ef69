import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/http/guards/loopback.js';
import { freshPostgres, postgresAvailable } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';

/** A request with full control of the headers (fetch will not let a test forge Host). */
function rawRequest(
  port: number,
  path: string,
  options: { method: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // An explicit length: Node's client sends no framing for DELETE bodies otherwise.
    const headers: Record<string, string> = { ...options.headers, ...(options.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(options.body)) }) };
    // An empty Host in the options means none at all.
    const setHost = headers.host !== '';
    if (!setHost) delete headers.host;
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method, headers, setHost }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** What a web page sends: the request of the issue, registering a server that runs a command. */
const PWN = (dir: string) => JSON.stringify({ name: 'pwn', command: 'sh', args: ['-c', `id > ${join(dir, 'pwned.txt')}`] });

describe('one guard chain for every route', () => {
  let gateway: RunningGateway;
  let port: number;
  let dir: string;
  let routes: { method: string; path: string }[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-guard-'));
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
    port = Number(new URL(gateway.url).port);
    // Every route the app has, from Hono's own table: a route added later is walked too.
    const seen = new Set<string>();
    routes = [];
    for (const r of gateway.conflux.app.routes) {
      const path = r.path.replace(/:[A-Za-z_]+/g, 'x').replace(/\*/g, 'x');
      const methods = r.method === 'ALL' ? ['GET', 'POST'] : [r.method];
      for (const method of methods) {
        const key = `${method} ${path}`;
        if (!seen.has(key)) {
          seen.add(key);
          routes.push({ method, path });
        }
      }
    }
  });
  afterAll(async () => {
    await gateway?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the route table covers the MCP endpoint, the REST API, the discovery documents and the probes', () => {
    const paths = new Set(routes.map((r) => r.path));
    for (const path of ['/mcp', '/health', '/ready', '/metrics', '/servers', '/api/v1/servers', '/api/v1/tools/x/call', '/api/v1/broadcast', '/.well-known/oauth-protected-resource']) {
      expect(paths).toContain(path);
    }
    expect(routes.length).toBeGreaterThan(30);
  });

  it('refuses a foreign Host, including names that only start like loopback, on every route', async () => {
    for (const { method, path } of routes) {
      for (const host of [`evil.example:${port}`, `127.evil.example:${port}`, `localhost.evil.example:${port}`, `evil.example@127.0.0.1:${port}`, '']) {
        const response = await rawRequest(port, path, { method, headers: { host, 'content-type': 'application/json' }, body: method === 'GET' ? undefined : PWN(dir) });
        // Node's own parser refuses a missing or malformed Host before the app sees it.
        expect([400, 403], `${method} ${path} with Host ${host}: ${response.status}`).toContain(response.status);
        if (response.status === 403) expect(response.body).toContain('Host');
      }
    }
  });

  it('refuses a foreign Origin and Origin: null on every route', async () => {
    for (const { method, path } of routes) {
      for (const origin of ['http://evil.example', 'null', 'http://127.0.0.1.evil.example:8000', 'file://']) {
        const response = await rawRequest(port, path, {
          method,
          headers: { host: `127.0.0.1:${port}`, origin, 'content-type': 'application/json' },
          body: method === 'GET' ? undefined : PWN(dir),
        });
        expect(response.status, `${method} ${path} with Origin ${origin}`).toBe(403);
        expect(response.body).toContain('Origin');
      }
    }
  });

  it('refuses text/plain, form and multipart bodies with 415 on every route', async () => {
    for (const { path } of routes) {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
        const response = await rawRequest(port, path, {
          method: 'POST',
          headers: { host: `127.0.0.1:${port}`, ...(type ? { 'content-type': type } : {}) },
          body: PWN(dir),
        });
        expect(response.status, `POST ${path} as ${type}`).toBe(415);
      }
    }
  });

  it('the request of the issue neither registers nor runs anything, in any of its variants', async () => {
    const variants: Record<string, string>[] = [
      { host: `evil.example:${port}`, origin: 'http://evil.example', 'content-type': 'text/plain' },
      { host: `127.0.0.1:${port}`, origin: 'http://evil.example', 'content-type': 'application/json' },
      { host: `127.0.0.1:${port}`, 'content-type': 'text/plain' },
      { host: `127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' },
    ];
    for (const headers of variants) {
      expect((await rawRequest(port, '/api/v1/servers', { method: 'POST', headers, body: PWN(dir) })).status).toBeGreaterThanOrEqual(400);
      const call = await rawRequest(port, '/api/v1/tools/alpha__echo/call', { method: 'POST', headers, body: JSON.stringify({ text: 'from a web page' }) });
      expect(call.status).toBeGreaterThanOrEqual(400);
    }
    expect(gateway.conflux.registry.definition('pwn')).toBeUndefined();
    expect(existsSync(join(dir, 'pwned.txt'))).toBe(false);
    // Without the browser's headers, the same JSON is refused by the stdio setting instead.
    const plain = await rawRequest(port, '/api/v1/servers', { method: 'POST', headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/json' }, body: PWN(dir) });
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body)).toMatchObject({ error: { code: 'stdio_not_allowed' } });
    expect(JSON.parse(plain.body).error.message).toContain('gateway.api.allowStdio');
    expect(existsSync(join(dir, 'pwned.txt'))).toBe(false);
  });

  it('refuses an absolute-form target naming another host than the Host header', async () => {
    for (const path of [`http://evil.example/mcp`, `http://evil.example:${port}/.well-known/oauth-protected-resource`, `http://127.0.0.2:${port}/health`]) {
      const response = await rawRequest(port, path, { method: 'GET', headers: { host: `127.0.0.1:${port}` } });
      expect(response.status, path).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({ error: expect.anything() });
    }
    const same = await rawRequest(port, `http://127.0.0.1:${port}/health`, { method: 'GET', headers: { host: `127.0.0.1:${port}` } });
    expect(same.status).toBe(200);
  });

  it('serves loopback Hosts and Origins, and JSON with a charset', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `127.0.0.2:${port}`]) {
      const response = await rawRequest(port, '/health', { method: 'GET', headers: { host, origin: 'http://localhost:6274' } });
      expect(response.status, host).toBe(200);
    }
    const call = await rawRequest(port, '/api/v1/tools/alpha__echo/call', {
      method: 'POST',
      headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ text: 'hello' }),
    });
    expect(call.status).toBe(200);
    expect(call.body).toContain('alpha: hello');
  });

  it('answers a REST body nested too deep with 400, never 500', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const response = await rawRequest(port, '/api/v1/tools/alpha__echo/call', {
      method: 'POST',
      headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/json' },
      body: `{"text": ${deep}}`,
    });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'too_deep' } });
  });

  it('shows no error texts on the unauthenticated /health', async () => {
    const health = JSON.parse((await rawRequest(port, '/health', { method: 'GET', headers: { host: `127.0.0.1:${port}` } })).body) as {
      servers: Record<string, object>;
    };
    expect(Object.keys(health.servers.alpha!).sort()).toEqual(['state', 'tools']);
  });
});

describe('Host allow-list beyond loopback', () => {
  it('names in gateway.allowedHosts are served, others refused, and same-origin pages accepted', async () => {
    const gateway = await startGateway(testConfig({}, { allowedHosts: ['mcp.example.com', '*.internal.example'] }));
    try {
      const port = Number(new URL(gateway.url).port);
      const get = (headers: Record<string, string>) => rawRequest(port, '/health', { method: 'GET', headers });
      expect((await get({ host: 'mcp.example.com' })).status).toBe(200);
      expect((await get({ host: `mcp.example.com:${port}` })).status).toBe(200);
      expect((await get({ host: 'a.internal.example' })).status).toBe(200);
      expect((await get({ host: 'internal.example' })).status).toBe(403);
      expect((await get({ host: 'mcp.example.com.evil.example' })).status).toBe(403);
      // Loopback names stay accepted (local probes and the CLI use them).
      expect((await get({ host: `127.0.0.1:${port}` })).status).toBe(200);
      expect((await get({ host: `127.evil.example:${port}` })).status).toBe(403);
      expect((await get({ host: 'mcp.example.com', origin: 'http://mcp.example.com' })).status).toBe(200);
      expect((await get({ host: 'mcp.example.com', origin: 'http://other.example.com' })).status).toBe(403);
    } finally {
      await gateway.stop();
    }
  });

  it('parses bind addresses and Host values properly', () => {
    expect(['127.0.0.1', '::1', 'localhost', '127.1.2.3', '[::1]:80', '127.0.0.1:8000'].map(isLoopbackHost)).toEqual([true, true, true, true, true, true]);
    expect(['0.0.0.0', '::', '127.evil.example', 'localhost.evil.example', '10.0.0.1', 'evil.example@127.0.0.1'].map(isLoopbackHost)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe('stdio servers through the API', () => {
  it('are registered and run when gateway.api.allowStdio is on, and stored ones are not started once it is off', async () => {
    if (!(await postgresAvailable())) return;
    const pg = await freshPostgres();
    const dir = await mkdtemp(join(tmpdir(), 'conflux-stdio-'));
    const database = await pg.open();
    let gateway: RunningGateway | undefined;
    try {
      await database.migrate();
      gateway = await startGateway(testConfig({}, { api: { allowStdio: true } }), { database });
      const port = Number(new URL(gateway.url).port);
      const definition = stdioFixture('beta');
      const created = await rawRequest(port, '/api/v1/servers', {
        method: 'POST',
        headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'beta', ...definition }),
      });
      expect(created.status).toBe(201);
      await gateway.stop();

      gateway = await startGateway(testConfig({}), { database });
      const listed = gateway.conflux.registry.definition('beta');
      expect(listed?.enabled).toBe(false);
      expect(gateway.conflux.upstreams.get('beta')?.state ?? 'disabled').toBe('disabled');
      const port2 = Number(new URL(gateway.url).port);
      const enable = await rawRequest(port2, '/api/v1/servers/beta', {
        method: 'PATCH',
        headers: { host: `127.0.0.1:${port2}`, 'content-type': 'application/json' },
        body: '{"enabled": true}',
      });
      expect(enable.status).toBe(403);
      const removed = await rawRequest(port2, '/api/v1/servers/beta', { method: 'DELETE', headers: { host: `127.0.0.1:${port2}` } });
      expect(removed.status).toBe(204);
    } finally {
      await gateway?.stop();
      await database.close();
      await pg.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

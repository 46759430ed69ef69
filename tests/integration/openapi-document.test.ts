import { AjvJsonSchemaValidator } from '@modelcontextprotocol/client/validators/ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';

interface Operation {
  operationId: string;
  security?: Record<string, string[]>[];
  requestBody?: unknown;
  parameters?: { in: string }[];
  responses: Record<string, { $ref?: string; description?: string; content?: Record<string, { schema: unknown }> }>;
}
interface OpenApi {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; responses: Record<string, Operation['responses'][string]>; securitySchemes: Record<string, Record<string, string>> };
}

const validator = new AjvJsonSchemaValidator();

/** Every operation of the document, with its method and path. */
function operations(doc: OpenApi): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path, op })));
}

/** The response a status of an operation documents, shared ones resolved. */
function documented(doc: OpenApi, op: Operation, status: number): Operation['responses'][string] | undefined {
  const response = op.responses[String(status)];
  if (!response?.$ref) return response;
  return doc.components.responses[response.$ref.replace('#/components/responses/', '')];
}

/** Checks `body` against the schema the document gives for `status` of `method path`. */
function expectConforms(doc: OpenApi, method: string, path: string, status: number, body: unknown): void {
  const op = doc.paths[`/api/v1${path}`]?.[method];
  expect(op, `${method} ${path} is documented`).toBeDefined();
  const schema = documented(doc, op!, status)?.content?.['application/json']?.schema;
  expect(schema, `${method} ${path} documents a ${status} body`).toBeDefined();
  // One self-contained JSON Schema: the components as its $defs.
  const standalone = JSON.parse(JSON.stringify({ ...(schema as object), $defs: doc.components.schemas }).replaceAll('"#/components/schemas/', '"#/$defs/'));
  const result = validator.getValidator(standalone)(body);
  expect(result.errorMessage, `${method} ${path} ${status}: ${JSON.stringify(body).slice(0, 300)}`).toBeUndefined();
}

describe('the OpenAPI document of /api/v1', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let api: string;
  let admin: Record<string, string>;
  let doc: OpenApi;

  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${api}${path}`, {
      method,
      headers: { ...admin, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: response.status === 204 ? undefined : ((await response.json()) as unknown) };
  };
  /** Calls `method path` and checks the answer has `status` and the documented shape. */
  const expectAnswer = async (method: string, path: string, status: number, body?: unknown, documentedPath = path) => {
    const answer = await call(method.toUpperCase(), path, body);
    expect(answer.status, `${method} ${path}: ${JSON.stringify(answer.body)}`).toBe(status);
    expectConforms(doc, method, documentedPath, status, answer.body);
    return answer.body as Record<string, unknown>;
  };

  beforeAll(async () => {
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha', { tags: ['red'] }) }, { auth: { apiKeys: true } }), { database });
    api = gateway.url.replace(/\/mcp$/, '/api/v1');
    const { key } = await gateway.conflux.apiKeys!.create({ name: 'ops', groups: ['MCP-Admin'] });
    admin = { 'x-api-key': key };
    const response = await fetch(`${api}/openapi.json`, { headers: admin });
    expect(response.status).toBe(200);
    doc = (await response.json()) as OpenApi;
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  it('takes either credential it describes, refuses none with the documented 401, and names its server by the request origin', async () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([{ url: new URL(api).origin, description: expect.any(String) }]);
    expect(doc.components.securitySchemes).toEqual({
      bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      apiKey: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-API-Key' }),
    });

    const anonymous = await fetch(`${api}/openapi.json`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expectConforms(doc, 'get', '/openapi.json', 401, await anonymous.json());

    const asBearer = await fetch(`${api}/openapi.json`, { headers: { authorization: `Bearer ${admin['x-api-key']}` } });
    expect(asBearer.status).toBe(200);
    expect(await asBearer.json()).toEqual(doc);

    // No gateway.trustedProxies: anyone could send these, so they name nothing.
    const forwarded = await fetch(`${api}/openapi.json`, { headers: { ...admin, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gateway.example.com' } });
    expect(((await forwarded.json()) as OpenApi).servers[0]!.url).toBe(new URL(api).origin);
  });

  it('names every operation once, asks a credential of each, and documents the refusals each can meet', () => {
    const all = operations(doc);
    expect(all.length).toBeGreaterThanOrEqual(29);
    const ids = all.map(({ op }) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(['listServers', 'getServer', 'callTool', 'broadcast', 'listAuditEvents', 'createApiKey', 'getCaller', 'getOpenApiDocument']));
    for (const { method, path, op } of all) {
      const where = `${method} ${path}`;
      expect(op.operationId, where).toMatch(/^[a-z][A-Za-z]+$/);
      expect(op.security, where).toEqual([{ bearer: [] }, { apiKey: [] }]);
      for (const status of [401, 403, 429]) expect(documented(doc, op, status)?.description, `${where} ${status}`).toBeTruthy();
      if (op.requestBody) for (const status of [400, 413]) expect(documented(doc, op, status)?.description, `${where} ${status}`).toBeTruthy();
      if (op.parameters?.some((p) => p.in === 'path')) expect(documented(doc, op, 404)?.description, `${where} 404`).toBeTruthy();
      const successes = Object.keys(op.responses).filter((s) => s.startsWith('2'));
      expect(successes, where).toHaveLength(1);
      if (successes[0] !== '204') expect(op.responses[successes[0]!]!.content?.['application/json']?.schema, where).toEqual({ $ref: expect.stringMatching(/^#\/components\/schemas\/\w+$/) });
    }
    // Every reference resolves.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/(schemas|responses)\/(\w+)"/g)];
    for (const [, kind, name] of refs) expect(doc.components[kind as 'schemas' | 'responses'][name!], `${kind}/${name}`).toBeDefined();
  });

  it('describes the answers the gateway gives', async () => {
    await expectAnswer('get', '/servers', 200);
    const server = await expectAnswer('get', '/servers/alpha', 200, undefined, '/servers/{name}');
    expect(server).toMatchObject({ name: 'alpha', state: 'ready', source: 'config', tags: ['red'] });
    await expectAnswer('get', '/tools', 200);
    await expectAnswer('get', '/tools/alpha__add', 200, undefined, '/tools/{name}');
    const called = await expectAnswer('post', '/tools/alpha__add/call', 200, { a: 2, b: 3 }, '/tools/{name}/call');
    expect(called.result).toMatchObject({ structuredContent: { sum: 5 } });
    await expectAnswer('post', '/broadcast', 200, { tool: 'echo', arguments: { text: 'hi' } });
    await expectAnswer('post', '/servers/alpha/restart', 202, undefined, '/servers/{name}/restart');
    const me = await expectAnswer('get', '/me', 200);
    expect(me).toMatchObject({ principal: 'key:ops', method: 'api_key', admin: true });

    await expectAnswer('post', '/access/grants', 201, { group: 'bots', server: 'alpha', level: 'read' });
    await expectAnswer('get', '/access/grants', 200);
    await expectAnswer('post', '/access/tool-rules', 201, { effect: 'deny', pattern: 'crash', server: 'alpha' });
    await expectAnswer('get', '/access/tool-rules', 200);
    const created = await expectAnswer('post', '/api-keys', 201, { name: 'nightly', groups: ['bots'], expiresAt: new Date(Date.now() + 86_400_000).toISOString() });
    await expectAnswer('get', '/api-keys', 200);
    await expectAnswer('delete', `/api-keys/${created.id as string}`, 200, undefined, '/api-keys/{id}');
    await expectAnswer('get', '/sessions', 200);
    await expectAnswer('get', '/connections', 200);
    const audit = await expectAnswer('get', '/audit?limit=5', 200, undefined, '/audit');
    expect((audit.events as unknown[]).length).toBeGreaterThan(0);

    // Refusals carry the documented error body.
    await expectAnswer('get', '/servers/nope', 404, undefined, '/servers/{name}');
    await expectAnswer('post', '/access/grants', 400, { server: 'alpha' });
  });
});

describe('the OpenAPI document behind a TLS-terminating proxy', () => {
  let gateway: RunningGateway;
  let api: string;
  const serverUrl = async (headers: Record<string, string>) => {
    const response = await fetch(`${api}/openapi.json`, { headers });
    expect(response.status).toBe(200);
    return ((await response.json()) as OpenApi).servers[0]!.url;
  };

  beforeAll(async () => {
    // The test's requests come from loopback: the proxy gateway.trustedProxies names.
    gateway = await startGateway(testConfig({}, { trustedProxies: ['127.0.0.1', '::1'] }));
    api = gateway.url.replace(/\/mcp$/, '/api/v1');
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('names the origin the proxy forwarded, from a trusted proxy', async () => {
    expect(await serverUrl({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gateway.example.com' })).toBe('https://gateway.example.com');
    // Each proxy of a chain appends: the first entry is what the client used; a default port is dropped.
    expect(await serverUrl({ 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'gateway.example.com:443, 10.0.0.5:8000' })).toBe('https://gateway.example.com');
    expect(await serverUrl({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gateway.example.com:8443' })).toBe('https://gateway.example.com:8443');
  });

  it('keeps its own scheme and host for a header missing or malformed', async () => {
    const own = new URL(api);
    expect(await serverUrl({})).toBe(own.origin);
    expect(await serverUrl({ 'x-forwarded-proto': 'https' })).toBe(`https://${own.host}`);
    expect(await serverUrl({ 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'gateway.example.com' })).toBe('http://gateway.example.com');
    expect(await serverUrl({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example.com/path?x=1' })).toBe(`https://${own.host}`);
    expect(await serverUrl({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'user@evil.example.com' })).toBe(`https://${own.host}`);
  });
});

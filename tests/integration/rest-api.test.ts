import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { freshPglite } from '../helpers/databases.js';
import { connectClient, startGateway, stdioFixture, testConfig, waitFor, type RunningGateway } from '../helpers/gateway.js';

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

describe('REST API /api/v1', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let api: string;

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  beforeAll(async () => {
    database = await freshPglite().open();
    gateway = await startGateway(
      testConfig(
        {
          alpha: stdioFixture('alpha', { tags: ['red'], timeout: 1 }),
          beta: stdioFixture('beta', { tags: ['blue'] }),
          dead: { command: 'conflux-no-such-command', tags: ['blue'] },
          gamma: stdioFixture('gamma'),
        },
        { api: { maxBodyBytes: 4096 }, reconnect: { initialDelayMs: 5000, maxDelayMs: 5000 } },
      ),
      { database },
    );
    api = gateway.url.replace(/\/mcp$/, '/api/v1');
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  it('lists servers with state, source, tags and tool counts', async () => {
    const body = (await (await fetch(`${api}/servers`)).json()) as { servers: { name: string; state: string; source: string; toolCount: number; tags: string[]; lastError?: string }[] };
    expect(body.servers.map((s) => s.name)).toEqual(['alpha', 'beta', 'dead', 'gamma']);
    expect(body.servers[0]).toMatchObject({ state: 'ready', source: 'config', tags: ['red'] });
    expect(body.servers[0]!.toolCount).toBeGreaterThan(5);
    expect(body.servers[2]).toMatchObject({ state: 'misconfigured', lastError: 'cannot start "conflux-no-such-command": command not found' });
    expect((await fetch(`${api}/servers/nope`)).status).toBe(404);
  });

  it('refuses to change a server defined in the config file', async () => {
    const response = await fetch(`${api}/servers/alpha`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"enabled": false}' });
    expect(response.status).toBe(409);
    expect(((await response.json()) as ErrorBody).error.code).toBe('read_only');
    expect((await post('/servers', { name: 'alpha', url: 'http://127.0.0.1:1/mcp' })).status).toBe(409);
  });

  it('answers a bad body with 400 and the zod issues', async () => {
    const invalid = await post('/servers', { name: 'x y', url: 'nope' });
    expect(invalid.status).toBe(400);
    const body = (await invalid.json()) as ErrorBody;
    expect(body.error.code).toBe('invalid_body');
    expect(body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'name' })]));
    const badDefinition = await post('/servers', { name: 'ok', transport: 'sse', url: 'not a url' });
    expect(badDefinition.status).toBe(400);
    expect(((await badDefinition.json()) as ErrorBody).error.message).toContain('url: expected a URL');
    const notJson = await post('/servers', '{"name":');
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as ErrorBody).error.code).toBe('invalid_json');
  });

  it('refuses a body over the limit with 413', async () => {
    const response = await post('/tools/alpha__echo/call', { text: 'x'.repeat(10_000) });
    expect(response.status).toBe(413);
    expect(((await response.json()) as ErrorBody).error.code).toBe('payload_too_large');
  });

  it('lists and describes tools, with server, tag and search filters', async () => {
    const byServer = (await (await fetch(`${api}/tools?server=beta`)).json()) as { tools: { name: string; server: string }[] };
    expect(byServer.tools.length).toBeGreaterThan(5);
    expect(new Set(byServer.tools.map((t) => t.server))).toEqual(new Set(['beta']));
    const byTag = (await (await fetch(`${api}/tools?tag=red`)).json()) as { tools: { server: string }[] };
    expect(new Set(byTag.tools.map((t) => t.server))).toEqual(new Set(['alpha']));
    const searched = (await (await fetch(`${api}/tools?q=${encodeURIComponent('add two numbers')}`)).json()) as { tools: { name: string }[] };
    expect(searched.tools[0]!.name).toMatch(/^(alpha|beta)__add$/);
    const tool = (await (await fetch(`${api}/tools/alpha__add`)).json()) as { inputSchema: unknown; route: unknown };
    expect(tool).toMatchObject({ inputSchema: { properties: { a: { type: 'number' } } }, route: { kind: 'upstream', server: 'alpha', originalName: 'add' } });
    expect((await fetch(`${api}/tools/nope`)).status).toBe(404);
  });

  it('calls a tool and maps failures to 404, 502 and 504; a tool error stays a result', async () => {
    const ok = await post('/tools/beta__add/call', { a: 1, b: 2 });
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { result: { structuredContent: unknown }; durationMs: number };
    expect(body.result.structuredContent).toEqual({ sum: 3 });
    expect(typeof body.durationMs).toBe('number');
    expect((await post('/tools/nope__x/call', {})).status).toBe(404);
    const badArgs = await post('/tools/beta__add/call', { a: 'one' });
    expect(badArgs.status).toBe(200); // the upstream's own answer: a tool error
    expect(((await badArgs.json()) as { result: { isError: boolean } }).result.isError).toBe(true);
    const never = await post('/tools/dead__echo/call', { text: 'x' });
    expect(never.status).toBe(404); // a server that never connected has no tools
    process.kill(gateway.conflux.upstreams.get('gamma')!.status().pid!, 'SIGKILL');
    await waitFor(() => gateway.conflux.upstreams.get('gamma')!.state === 'down', 5000, 'gamma down');
    const down = await post('/tools/gamma__echo/call', { text: 'x' });
    expect(down.status).toBe(502);
    expect(((await down.json()) as ErrorBody).error).toMatchObject({ code: 'upstream_unavailable', details: { server: 'gamma' } });
    const timeout = await post('/tools/alpha__sleep/call', { ms: 3000 });
    expect(timeout.status).toBe(504);
    expect(((await timeout.json()) as ErrorBody).error).toMatchObject({ code: 'upstream_timeout', details: { server: 'alpha' } });
  });

  it('broadcasts over REST', async () => {
    const response = await post('/broadcast', { tool: 'echo', arguments: { text: 'hey' }, tags: ['red', 'blue'] });
    expect(response.status).toBe(200);
    const result = (await response.json()) as { structuredContent: { total: number; succeeded: number; results: Record<string, unknown> } };
    expect(result.structuredContent).toMatchObject({ total: 2, succeeded: 2 });
    expect(Object.keys(result.structuredContent.results).sort()).toEqual(['alpha', 'beta']);
    expect((await post('/broadcast', { tool: 'nothing_offers_this' })).status).toBe(404);
  });

  it('serves an OpenAPI document of every route', async () => {
    const doc = (await (await fetch(`${api}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/servers', '/api/v1/servers/{name}', '/api/v1/tools', '/api/v1/tools/{name}/call', '/api/v1/broadcast', '/api/v1/audit']),
    );
    expect(Object.keys(doc.paths['/api/v1/servers/{name}']!).sort()).toEqual(['delete', 'get', 'patch', 'put']);
  });

  it('audits calls over MCP and REST, with secrets redacted', async () => {
    const { client, close } = await connectClient(gateway.url);
    await client.callTool({ name: 'alpha__echo', arguments: { text: 'from mcp', api_key: 'sk-123', nested: { password: 'pw' } } });
    await client.getPrompt({ name: 'beta__greet', arguments: { name: 'Ada' } });
    await client.readResource({ uri: 'demo://alpha/static' });
    await close();
    await post('/tools/beta__echo/call', { text: 'from rest', token: 'abc' });

    const page = (await (await fetch(`${api}/audit?limit=50`)).json()) as {
      total: number;
      events: { kind: string; channel: string; target: string; server?: string; principal: string; arguments?: Record<string, unknown>; status: string; sessionId?: string }[];
    };
    const mcpCall = page.events.find((e) => e.target === 'alpha__echo' && e.channel === 'mcp')!;
    expect(mcpCall).toMatchObject({ kind: 'tool_call', server: 'alpha', principal: 'anonymous', status: 'ok' });
    expect(mcpCall.sessionId).toBeTruthy();
    expect(mcpCall.arguments).toEqual({ text: 'from mcp', api_key: '[redacted]', nested: { password: '[redacted]' } });
    const restCall = page.events.find((e) => e.target === 'beta__echo' && e.channel === 'rest')!;
    expect(restCall.arguments).toEqual({ text: 'from rest', token: '[redacted]' });
    expect(page.events.find((e) => e.kind === 'prompt_get')).toMatchObject({ target: 'beta__greet', server: 'beta', arguments: { name: 'Ada' } });
    expect(page.events.find((e) => e.kind === 'resource_read')).toMatchObject({ target: 'demo://alpha/static', server: 'alpha' });
    expect(page.events.find((e) => e.target === 'alpha__sleep')).toMatchObject({ status: 'error', channel: 'rest' });
    expect(page.events.some((e) => e.kind === 'admin' && e.status === 'error')).toBe(true); // the refused PATCH

    const filtered = (await (await fetch(`${api}/audit?server=beta&kind=tool_call`)).json()) as { events: { server: string }[] };
    expect(filtered.events.length).toBeGreaterThan(0);
    expect(new Set(filtered.events.map((e) => e.server))).toEqual(new Set(['beta']));
    const bad = await fetch(`${api}/audit?limit=0`);
    expect(bad.status).toBe(400);
  });
});

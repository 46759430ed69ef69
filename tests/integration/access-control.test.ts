import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';
import type { OpenedDatabase } from '../../src/store/database.js';

/**
 * Two users with different grants over two upstreams: what each sees, what each may call,
 * over MCP and REST, and what happens when one uses the other's session.
 */
describe('access control', () => {
  let beta: RunningUpstream;
  let gateway: RunningGateway;
  let database: OpenedDatabase;
  let base: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    beta = await startStreamableUpstream('beta');
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha'), beta: { url: beta.url } },
        {
          auth: { jwt: { secret: JWT_SECRET }, apiKeys: true },
          access: {
            grants: [
              { user: 'alice@example.com', servers: ['alpha'], level: 'call' },
              { group: 'beta-team', servers: ['beta'] },
            ],
            toolRules: [{ group: 'beta-team', server: 'beta', deny: ['pid', 'sleep'] }],
          },
        },
      ),
      { database },
    );
    base = gateway.url.replace(/\/mcp$/, '');
    tokens.alice = await hs256Token({ sub: 'u-alice', email: 'alice@example.com' });
    tokens.bob = await hs256Token({ sub: 'u-bob', email: 'bob@example.com', groups: ['beta-team'] });
    tokens.carol = await hs256Token({ sub: 'u-carol', email: 'carol@example.com' });
    tokens.admin = await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] });
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
    await beta?.close();
  });

  const names = async (who: string) => {
    const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens[who]!));
    try {
      return (await client.listTools()).tools.map((t) => t.name).sort();
    } finally {
      await close();
    }
  };
  const rest = (who: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, { ...init, headers: { ...bearer(tokens[who]!), 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });

  it('shows each principal only the tools its grants and tool rules allow', async () => {
    const alice = await names('alice');
    const bob = await names('bob');
    const carol = await names('carol');
    const admin = await names('admin');
    expect(alice.filter((n) => n.startsWith('alpha__'))).toContain('alpha__echo');
    expect(alice.some((n) => n.startsWith('beta__'))).toBe(false);
    expect(bob).toContain('beta__echo');
    expect(bob).not.toContain('beta__pid');
    expect(bob).not.toContain('beta__sleep');
    expect(bob.some((n) => n.startsWith('alpha__'))).toBe(false);
    expect(carol.filter((n) => n.startsWith('alpha__') || n.startsWith('beta__'))).toEqual([]);
    expect(admin).toContain('alpha__pid');
    expect(admin).toContain('beta__pid');
    // Broadcasts are narrowed to what each may call: alice's echo would reach alpha alone, and a
    // broadcast over one server would tell her that a server she cannot see offers echo too.
    expect(alice).not.toContain('broadcast__echo');
    expect(admin).toContain('broadcast__echo');
    expect(carol).not.toContain('broadcast__echo');
  });

  it('refuses calls outside a principal\'s rights over MCP and REST, and audits the refusal', async () => {
    const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens.alice!));
    try {
      const ok = await client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } });
      expect(ok.content).toEqual([{ type: 'text', text: 'alpha: hi' }]);
      const refused = await client.callTool({ name: 'beta__echo', arguments: { text: 'hi' } }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(McpError);
      // Outside alice's view: answered as an unknown tool (see secret-exposure.test.ts), audited as denied.
      expect((refused as McpError).code).toBe(-32602);
      expect((refused as McpError).message).toContain('Unknown tool: "beta__echo"');
      // A broadcast alice may call on one server only is outside her view: answered as an unknown tool.
      const fanned = await client.callTool({ name: 'broadcast__echo', arguments: { text: 'all' } }).catch((e: unknown) => e);
      expect((fanned as McpError).message).toContain('Unknown tool: "broadcast__echo"');
      // Search ranks only what alice may see.
      const found = await client.callTool({ name: 'conflux__search_tools', arguments: { query: 'echo text', limit: 50 } });
      const hits = (found.structuredContent as { tools: { name: string }[] }).tools.map((t) => t.name);
      expect(hits).toContain('alpha__echo');
      expect(hits).not.toContain('beta__echo');
    } finally {
      await close();
    }

    const bobPid = await rest('bob', '/tools/beta__pid/call', { method: 'POST', body: '{}' });
    expect(bobPid.status).toBe(404);
    expect(((await bobPid.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const aliceBeta = await rest('alice', '/tools/beta__echo/call', { method: 'POST', body: JSON.stringify({ text: 'x' }) });
    expect(aliceBeta.status).toBe(404);
    const bobEcho = await rest('bob', '/tools/beta__echo/call', { method: 'POST', body: JSON.stringify({ text: 'x' }) });
    expect(bobEcho.status).toBe(200);
    const listed = (await (await rest('bob', '/tools')).json()) as { tools: { name: string }[] };
    expect(listed.tools.map((t) => t.name).sort()).toEqual((await names('bob')).filter((n) => n.startsWith('beta__')));
    const servers = (await (await rest('alice', '/servers')).json()) as { servers: { name: string }[] };
    expect(servers.servers.map((s) => s.name)).toEqual(['alpha']);
    expect((await rest('alice', '/servers/beta')).status).toBe(404);

    const audit = (await (await rest('admin', '/audit?status=denied')).json()) as { events: { principal: string; target: string; channel: string }[] };
    const denied = audit.events.map((e) => `${e.principal} ${e.channel} ${e.target}`);
    expect(denied).toContain('alice@example.com mcp beta__echo');
    expect(denied).toContain('bob@example.com rest beta__pid');
    expect(denied).toContain('alice@example.com rest beta__echo');
  });

  it('filters resources and prompts by server', async () => {
    const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens.alice!));
    try {
      const resources = (await client.listResources()).resources.map((r) => r.uri);
      expect(resources).toContain('demo://alpha/static');
      expect(resources).not.toContain('demo://beta/static');
      const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
      expect(prompts.every((p) => p.startsWith('alpha__'))).toBe(true);
      expect(prompts.length).toBeGreaterThan(0);
      const read = await client.readResource({ uri: 'demo://beta/static' }).catch((e: unknown) => e);
      expect(read).toMatchObject({ code: -32602, data: { uri: 'demo://beta/static' } });
    } finally {
      await close();
    }
  });

  it('refuses a session opened by one principal to another (404), with tokens checked on every request', async () => {
    const alice = await clientWithHeaders(gateway.url, bearer(tokens.alice!));
    try {
      const sessionId = alice.transport.sessionId!;
      const hijack = await fetch(gateway.url, {
        method: 'POST',
        headers: { ...bearer(tokens.bob!), 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      expect(hijack.status).toBe(404);
      const noToken = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/list' }),
      });
      expect(noToken.status).toBe(401);
      expect(noToken.headers.get('www-authenticate')).toMatch(/^Bearer/);
      // The rightful owner still uses it.
      expect((await alice.client.listTools()).tools.length).toBeGreaterThan(0);
    } finally {
      await alice.close();
    }
  });

  it('keeps the admin API to admins, and applies grants and API keys made through it', async () => {
    const byBob = await rest('bob', '/access/grants', { method: 'POST', body: JSON.stringify({ user: 'carol@example.com', server: 'alpha', level: 'read' }) });
    expect(byBob.status).toBe(403);
    expect((await rest('bob', '/audit')).status).toBe(403);
    expect((await rest('bob', '/servers', { method: 'POST', body: JSON.stringify({ name: 'x', command: 'true' }) })).status).toBe(403);

    const granted = await rest('admin', '/access/grants', { method: 'POST', body: JSON.stringify({ user: 'carol@example.com', server: 'alpha', level: 'read' }) });
    expect(granted.status).toBe(201);
    const grant = (await granted.json()) as { id: string };
    expect((await names('carol')).filter((n) => n.startsWith('alpha__'))).toContain('alpha__echo');
    // read lists, call calls.
    const readOnly = await rest('carol', '/tools/alpha__echo/call', { method: 'POST', body: JSON.stringify({ text: 'x' }) });
    expect(readOnly.status).toBe(403);
    expect(((await readOnly.json()) as { error: { message: string } }).error.message).toContain('not call it');
    expect((await rest('admin', `/access/grants/${grant.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await names('carol')).some((n) => n.startsWith('alpha__'))).toBe(false);

    const created = await rest('admin', '/api-keys', { method: 'POST', body: JSON.stringify({ name: 'ci-bot', groups: ['beta-team'] }) });
    expect(created.status).toBe(201);
    const { key, id } = (await created.json()) as { key: string; id: string };
    expect(key).toMatch(/^cfx_/);
    const listedKeys = await (await rest('admin', '/api-keys')).text();
    expect(listedKeys).toContain('ci-bot');
    expect(listedKeys).not.toContain(key);
    const bot = await clientWithHeaders(gateway.url, { 'x-api-key': key });
    try {
      const tools = (await bot.client.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('beta__echo');
      expect(tools).not.toContain('beta__pid');
    } finally {
      await bot.close();
    }
    expect((await rest('admin', `/api-keys/${id}`, { method: 'DELETE' })).status).toBe(200);
    const afterRevoke = await fetch(`${base}/api/v1/tools`, { headers: bearer(key) });
    expect(afterRevoke.status).toBe(401);
    expect(((await afterRevoke.json()) as { error: { message: string } }).error.message).toBe('API key revoked');

    const me = (await (await rest('bob', '/me')).json()) as { principal: string; groups: string[]; servers: Record<string, string>; admin: boolean };
    expect(me).toMatchObject({ principal: 'bob@example.com', groups: ['beta-team'], admin: false, servers: { beta: 'call' } });
  });

  it('never forwards a client\'s token to an upstream', () => {
    expect(beta.authorizations!.some((a) => Object.values(tokens).some((t) => a.includes(t)))).toBe(false);
  });
});

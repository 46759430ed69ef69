import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { ROOT, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

const LABELLED = resolve(ROOT, 'tests/fixtures/labelled-stdio-server.ts');
/** Every secret in this test contains this word (or is a JWT), so "nothing shows a secret" is one check. */
const MARK = 'SECRET';
const ENV_SECRET = `env-${MARK}-value-4711`;
/** A key carried in an HTTP upstream's URL path (`https://host/mcp/<key>/...`): admins may see it, no one else. */
const PATH_KEY = 'pathkey-7c1e9b42';
/** Credentials passed to a stdio server as flags, which it prints on stderr before exiting. */
const FLAG_SECRETS = ['tok-12345678', 'apikey-flag-5150', 'pw-flag-8086'];

function labelled(label: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: [...nodeArgs(LABELLED), label], cwd: ROOT, ...extra };
}

function expectNoSecret(text: string): void {
  expect(text).not.toContain(MARK);
  expect(text).not.toContain('eyJhbGciOiJIUzI1NiJ9');
}

/** A JSON-RPC answer from a POST, whether sent as JSON or as one SSE event. */
async function rpcAnswer(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) return JSON.parse(text) as Record<string, unknown>;
  const data = text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  return data.find((message) => 'id' in message)!;
}

/** A raw MCP session (no SDK client), so answers can be compared as sent. */
async function rawSession(url: string, headers: Record<string, string>, capabilities: Record<string, unknown>) {
  const base = { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities, clientInfo: { name: 'raw', version: '1' } } }),
  });
  const sessionId = init.headers.get('mcp-session-id')!;
  await init.text();
  const session = { ...base, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' };
  await (await fetch(url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  let id = 1;
  return {
    async call(name: string, args: Record<string, unknown>): Promise<{ status: number; answer: Record<string, unknown> }> {
      const response = await fetch(url, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: args } }) });
      return { status: response.status, answer: await rpcAnswer(response) };
    },
    close: () => fetch(url, { method: 'DELETE', headers: session }).then((r) => r.text()),
  };
}

/**
 * What callers see of secrets and of what they may not use: upstream stderr in errors and
 * listings, server definitions for admins and others, broadcasts built from each caller's
 * view, and hidden tools answered exactly as unknown ones. A real gateway with three real
 * upstreams (two stdio, one Streamable HTTP whose URL and headers carry credentials).
 */
describe('secrets and caller views', () => {
  let web: RunningUpstream;
  let gateway: RunningGateway;
  let markerDir: string;
  let base: string;
  let webPort: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    markerDir = await mkdtemp(join(tmpdir(), 'conflux-leak-'));
    web = await startStreamableUpstream('web');
    const webUrl = new URL(web.url);
    webPort = webUrl.port;
    gateway = await startGateway(
      testConfig(
        {
          apple: labelled('apple', { tags: ['fruit'], env: { UPSTREAM_TOKEN: ENV_SECRET, LEAK_MARKER: join(markerDir, 'apple') } }),
          web: {
            url: `http://webuser:webpass-${MARK}@127.0.0.1:${webPort}${webUrl.pathname}/${PATH_KEY}/stream?token=url-${MARK}-9&page=2`,
            headers: { 'X-Api-Key': `header-${MARK}-5` },
          },
          // Prints its command line on stderr and exits: the stderr tail becomes lastError.
          argv: {
            transport: 'stdio',
            command: 'sh',
            args: ['-c', 'echo "usage error, started with: $*" >&2; exit 1', 'argv', '--token', FLAG_SECRETS[0], `--API_KEY=${FLAG_SECRETS[1]}`, '--verbose', '--db-password', FLAG_SECRETS[2]],
          },
          zebra: labelled('zebra', { tags: ['fruit'] }),
        },
        {
          auth: { jwt: { secret: JWT_SECRET } },
          access: {
            grants: [
              { user: 'alice@example.com', servers: ['zebra', 'web'], level: 'call' },
              { user: 'bob@example.com', servers: ['apple', 'zebra'], level: 'call' },
              { user: 'reader@example.com', servers: ['zebra'], level: 'read' },
            ],
            toolRules: [{ user: 'alice@example.com', server: 'web', deny: ['echo'] }],
          },
        },
      ),
    );
    base = gateway.url.replace(/\/mcp$/, '');
    tokens.alice = await hs256Token({ sub: 'u-alice', email: 'alice@example.com' });
    tokens.bob = await hs256Token({ sub: 'u-bob', email: 'bob@example.com' });
    tokens.reader = await hs256Token({ sub: 'u-reader', email: 'reader@example.com' });
    tokens.admin = await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] });
  }, 30_000);

  afterAll(async () => {
    await gateway?.stop();
    await web?.close();
    if (markerDir) await rm(markerDir, { recursive: true, force: true });
  });

  const get = async (who: string, path: string) => {
    const response = await fetch(`${base}${path}`, { headers: bearer(tokens[who]!) });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, unknown>;
  };
  const rest = (who: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, { ...init, headers: { ...bearer(tokens[who]!), 'content-type': 'application/json' } });
  const toolsOf = async (who: string): Promise<Tool[]> => {
    const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens[who]!));
    try {
      return (await client.listTools()).tools;
    } finally {
      await close();
    }
  };

  describe('server listings', () => {
    const PUBLIC_KEYS = ['description', 'name', 'state', 'tags', 'toolCount', 'transport', 'url'];

    it('shows a non-admin only names, states, transports, tags, tool counts, descriptions and scheme-host-port URLs', async () => {
      for (const path of ['/api/v1/servers', '/servers']) {
        const body = await get('alice', path);
        const servers = body.servers as Record<string, unknown>[];
        expect(servers.map((s) => s.name).sort()).toEqual(['web', 'zebra']);
        for (const server of servers) expect(PUBLIC_KEYS).toEqual(expect.arrayContaining(Object.keys(server)));
        expect(servers.find((s) => s.name === 'web')).toMatchObject({ transport: 'streamable-http', url: `http://127.0.0.1:${webPort}` });
        expect(servers.find((s) => s.name === 'zebra')).toMatchObject({ transport: 'stdio', tags: ['fruit'], state: 'ready', toolCount: 2 });
        const text = JSON.stringify(body);
        expectNoSecret(text);
        for (const hidden of ['webuser', PATH_KEY, '/mcp', 'labelled-stdio-server', 'tsx', 'command', 'args', 'env', 'headers', 'lastError', 'pid']) expect(text).not.toContain(hidden);
      }
      const one = (await (await rest('alice', '/servers/web')).json()) as Record<string, unknown>;
      expect(one).toEqual({ name: 'web', state: 'ready', transport: 'streamable-http', tags: [], toolCount: expect.any(Number), url: `http://127.0.0.1:${webPort}` });
    });

    it('shows an admin the definitions with env and header values, URL credentials and secret query values redacted', async () => {
      const body = await get('admin', '/api/v1/servers');
      const servers = body.servers as { name: string; definition: Record<string, unknown> }[];
      const apple = servers.find((s) => s.name === 'apple')!.definition;
      expect(apple.env).toEqual({ UPSTREAM_TOKEN: '[redacted]', LEAK_MARKER: '[redacted]' });
      expect(apple.args).toEqual([...nodeArgs(LABELLED), 'apple']);
      const webDefinition = servers.find((s) => s.name === 'web')!.definition;
      // Admins see the path, key included: it is how they tell where the server is.
      expect(webDefinition.url).toBe(`http://[redacted]@127.0.0.1:${webPort}/mcp/${PATH_KEY}/stream?token=[redacted]&page=2`);
      const argv = servers.find((s) => s.name === 'argv')!.definition;
      expect(argv.args).toEqual(['-c', expect.any(String), 'argv', '--token', '[redacted]', '--API_KEY=[redacted]', '--verbose', '--db-password', '[redacted]']);
      expect(webDefinition.headers).toEqual({ 'X-Api-Key': '[redacted]' });
      expectNoSecret(JSON.stringify(body));
      for (const secret of FLAG_SECRETS) expect(JSON.stringify(body)).not.toContain(secret);
      expectNoSecret(JSON.stringify(await (await rest('admin', '/servers/web')).json()));
    });
  });

  describe('broadcasts from the caller\'s view', () => {
    it('builds broadcast__echo from the servers the caller may call: schema, description and enum', async () => {
      const admin = (await toolsOf('admin')).find((t) => t.name === 'broadcast__echo')!;
      expect(Object.keys(admin.inputSchema.properties!)).toEqual(expect.arrayContaining(['text', 'apple_only', 'zebra_only']));
      expect(admin.description).toContain('(apple, web, zebra)');

      // bob may call apple and zebra; web is outside his rights.
      const bob = (await toolsOf('bob')).find((t) => t.name === 'broadcast__echo')!;
      expect(Object.keys(bob.inputSchema.properties!).sort()).toEqual(['apple_only', 'servers', 'tags', 'text', 'zebra_only']);
      expect((bob.inputSchema.properties!.servers as { items: { enum: string[] } }).items.enum).toEqual(['apple', 'zebra']);
      expect((bob.inputSchema.properties!.tags as { items: { enum: string[] } }).items.enum).toEqual(['fruit']);
      expect(bob.description).toBe('Runs "echo" on every server that offers it (apple, zebra) at once and returns each server\'s result, labelled. Echoes the text, on apple');
      expect(JSON.stringify(bob)).not.toContain('web');
      // The REST description of the tool is the caller's too.
      const described = (await (await rest('bob', '/tools/broadcast__echo')).json()) as Tool & { route: { servers: string[] } };
      expect(described.route.servers).toEqual(['apple', 'zebra']);
      expect(JSON.stringify(described)).not.toContain('web');
    });

    it('lists no broadcast__echo for a caller that may call echo on one server only, and answers it as an unknown tool', async () => {
      // alice may call zebra, and web except its echo: a broadcast over zebra alone would tell
      // her that another server offers echo (the full catalog makes one only for two or more).
      const names = (await toolsOf('alice')).map((t) => t.name);
      expect(names).toContain('zebra__echo');
      expect(names).not.toContain('broadcast__echo');
      const hidden = await rest('alice', '/tools/broadcast__echo');
      const unknown = await rest('alice', '/tools/broadcast__nothing');
      expect(hidden.status).toBe(404);
      expect(unknown.status).toBe(404);
      expect(JSON.stringify(await hidden.json()).replaceAll('broadcast__echo', '<tool>')).toBe(JSON.stringify(await unknown.json()).replaceAll('broadcast__nothing', '<tool>'));
    });

    it('builds broadcast__by_tag__<tag> from the tagged servers and tools the caller may call', async () => {
      const admin = (await toolsOf('admin')).find((t) => t.name === 'broadcast__by_tag__fruit')!;
      expect((admin.inputSchema.properties!.tool as { enum: string[] }).enum).toEqual(expect.arrayContaining(['apple_tool', 'zebra_tool']));

      // A tag tool is made for a tag as soon as one server has it, so one over zebra alone tells nothing.
      const alice = (await toolsOf('alice')).find((t) => t.name === 'broadcast__by_tag__fruit')!;
      expect((alice.inputSchema.properties!.tool as { enum: string[] }).enum).toEqual(['echo', 'zebra_tool']);
      expect(alice.description).toContain('(zebra)');
      expect(JSON.stringify(alice)).not.toContain('apple');
    });

    it('lists no broadcast for a caller that may call none of its servers', async () => {
      const names = (await toolsOf('reader')).map((t) => t.name);
      expect(names).toContain('zebra__echo'); // readable, so listed
      expect(names.filter((n) => n.startsWith('broadcast__'))).toEqual([]);
    });
  });

  describe('hidden tools answered as unknown ones', () => {
    const HIDDEN = 'apple__echo';
    const UNKNOWN = 'nothing__echo';
    const same = (value: unknown, name: string) => JSON.stringify(value).replaceAll(name, '<tool>');

    for (const [path, capabilities] of [
      ['the plain path', {}],
      ['the SDK server', { sampling: {} }],
    ] as const) {
      it(`answers tools/call identically over MCP (${path}), directly and through conflux__call_tool`, async () => {
        const session = await rawSession(gateway.url, bearer(tokens.alice!), capabilities);
        try {
          const hidden = await session.call(HIDDEN, { text: 'x' });
          const unknown = await session.call(UNKNOWN, { text: 'x' });
          expect(hidden.status).toBe(unknown.status);
          expect((unknown.answer.error as { code: number }).code).toBe(-32602);
          expect(same({ ...hidden.answer, id: 0 }, HIDDEN)).toBe(same({ ...unknown.answer, id: 0 }, UNKNOWN));
          const viaHidden = await session.call('conflux__call_tool', { name: HIDDEN });
          const viaUnknown = await session.call('conflux__call_tool', { name: UNKNOWN });
          expect(same({ ...viaHidden.answer, id: 0 }, HIDDEN)).toBe(same({ ...viaUnknown.answer, id: 0 }, UNKNOWN));
        } finally {
          await session.close();
        }
      });
    }

    it('counts a hidden and an unknown name identically in /metrics, under one fixed label', async () => {
      /** The tool series of /metrics, bucket and sum lines left out (they depend on how long a call took). */
      const series = async (): Promise<Map<string, number>> => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const lines = text.split('\n').filter((l) => l.startsWith('mcp_tool_') && !/_(?:bucket|sum)\{/.test(l));
        return new Map(lines.map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
      };
      const delta = (before: Map<string, number>, after: Map<string, number>) =>
        Object.fromEntries([...after].filter(([key, value]) => value !== (before.get(key) ?? 0)).map(([key, value]) => [key, value - (before.get(key) ?? 0)]));
      const session = await rawSession(gateway.url, bearer(tokens.alice!), {});
      try {
        for (const via of ['direct', 'conflux__call_tool'] as const) {
          const send = (name: string) => (via === 'direct' ? session.call(name, { text: 'x' }) : session.call('conflux__call_tool', { name }));
          const start = await series();
          await send(HIDDEN);
          const afterHidden = await series();
          await send(UNKNOWN);
          const afterUnknown = await series();
          const hidden = delta(start, afterHidden);
          expect(Object.keys(hidden).length).toBeGreaterThan(0);
          expect(delta(afterHidden, afterUnknown)).toEqual(hidden);
        }
      } finally {
        await session.close();
      }
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toContain('mcp_tool_executions_total{tool_id="(unknown)",status="error"}');
      // Caller-chosen names never become labels (they could fill the label budget), and nothing says denied.
      for (const name of [HIDDEN, UNKNOWN]) expect(text).not.toContain(name);
      expect(text).not.toMatch(/mcp_tool_executions_total\{[^}]*status="denied"/);
    });

    it('answers identically over REST: the call, the description, and the call through conflux__call_tool', async () => {
      const compare = async (send: (name: string) => Promise<Response>) => {
        const hidden = await send(HIDDEN);
        const unknown = await send(UNKNOWN);
        expect(hidden.status).toBe(404);
        expect(unknown.status).toBe(404);
        expect(same(await hidden.json(), HIDDEN)).toBe(same(await unknown.json(), UNKNOWN));
      };
      await compare((name) => rest('alice', `/tools/${name}/call`, { method: 'POST', body: '{"text":"x"}' }));
      await compare((name) => rest('alice', `/tools/${name}`));
      await compare((name) => rest('alice', '/tools/conflux__call_tool/call', { method: 'POST', body: JSON.stringify({ name }) }));
    });
  });

  describe('upstream stderr in errors', () => {
    it('redacts the values of secret-looking flags a stdio server printed with its command line', async () => {
      const argv = () => gateway.conflux.upstreams.get('argv')!.status();
      await waitFor(() => (argv().lastError ?? '').includes('started with'), 15_000, 'argv down with its stderr');
      const lastError = argv().lastError!;
      // The flags and the arguments that are not credentials stay readable.
      expect(lastError).toContain('started with: --token [redacted] --API_KEY=[redacted] --verbose --db-password [redacted]');
      for (const path of ['/servers', '/api/v1/servers', '/api/v1/servers/argv']) {
        const text = JSON.stringify(await get('admin', path));
        expect(text).toContain('started with');
        for (const secret of FLAG_SECRETS) expect(text).not.toContain(secret);
      }
    });

    it('redacts what a crashing server printed in lastError, /servers, tool errors and REST errors', async () => {
      const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens.admin!));
      try {
        expect(textOf(await client.callTool({ name: 'apple__leak_and_exit', arguments: {} }))).toBe('leaking');
        const apple = () => gateway.conflux.upstreams.get('apple')!.status();
        await waitFor(() => apple().state === 'down' && (apple().lastError ?? '').includes('stderr:'), 15_000, 'apple down with its stderr');
        const lastError = apple().lastError!;
        expect(lastError).toMatch(/^process exited with code 1; stderr: /);
        expect(lastError).toContain('[redacted]');
        expectNoSecret(lastError);

        const failed = await client.callTool({ name: 'apple__echo', arguments: { text: 'x' } });
        expect(failed.isError).toBe(true);
        expect(textOf(failed)).toContain('upstream "apple" is unavailable: process exited with code 1; stderr: ');
        expectNoSecret(textOf(failed));
        const fanned = await client.callTool({ name: 'broadcast__echo', arguments: { text: 'x' } });
        expect(JSON.stringify(fanned)).toContain('upstream \\"apple\\" is unavailable');
        expectNoSecret(JSON.stringify(fanned));
      } finally {
        await close();
      }
      const restCall = await rest('admin', '/tools/apple__echo/call', { method: 'POST', body: '{"text":"x"}' });
      expect(restCall.status).toBe(502);
      expectNoSecret(await restCall.text());
      for (const path of ['/servers', '/api/v1/servers', '/api/v1/servers/apple']) {
        const text = JSON.stringify(await get('admin', path));
        expect(text).toContain('stderr: ');
        expectNoSecret(text);
      }
    });
  });
});

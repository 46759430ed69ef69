import { describe, expect, it } from 'vitest';
import { accessFor, rulesFromSettings } from '../../src/auth/access-policy.js';
import { principalFromClaims, scopesOf, type Principal } from '../../src/auth/principal.js';
import { TrustedProxies } from '../../src/auth/trusted-proxies.js';
import { restrictedView } from '../../src/catalog/catalog-view.js';
import { buildPromptCatalog } from '../../src/catalog/prompt-catalog.js';
import { buildResourceCatalog } from '../../src/catalog/resource-catalog.js';
import { buildToolCatalog } from '../../src/catalog/tool-catalog.js';
import { AccessSettingsSchema } from '../../src/config/schema.js';

const user = (id: string, groups: string[] = [], roles: string[] = []): Principal => ({ id, subject: id, email: id, groups, roles, scopes: [], method: 'jwt' });

const settings = AccessSettingsSchema.parse({
  grants: [
    { user: 'alice@example.com', servers: ['github'], level: 'call' },
    { group: 'readers', servers: ['*'], level: 'read' },
    { group: 'ops', servers: ['k8s', 'github'] },
  ],
  toolRules: [
    { group: 'ops', server: 'k8s', allow: ['get_*', 'list_*'] },
    { server: '*', deny: ['delete_*'] },
    { user: 'alice@example.com', server: 'github', deny: ['merge_*'] },
  ],
});
const rules = rulesFromSettings(settings);

describe('access policy', () => {
  it('takes the highest grant of the user and its groups, per server', () => {
    const alice = accessFor(user('alice@example.com', ['readers']), rules, settings);
    expect(alice.level('github')).toBe('call');
    expect(alice.level('k8s')).toBe('read');
    const nobody = accessFor(user('eve@example.com'), rules, settings);
    expect(nobody.level('github')).toBe('none');
    expect(accessFor(user('eve@example.com'), rules, { ...settings, defaultLevel: 'read' }).level('github')).toBe('read');
  });

  it('narrows tools: deny wins, and allow rules keep only what they match', () => {
    const ops = accessFor(user('olga@example.com', ['ops']), rules, settings);
    expect(ops.level('k8s', 'get_pods')).toBe('call');
    expect(ops.level('k8s', 'apply_manifest')).toBe('none'); // not allowed by ops' allow list on k8s
    expect(ops.level('github', 'apply_manifest')).toBe('call'); // allow rules are per server
    expect(ops.level('github', 'delete_repo')).toBe('none'); // everyone's deny
    const alice = accessFor(user('alice@example.com'), rules, settings);
    expect(alice.level('github', 'merge_pr')).toBe('none');
    expect(alice.level('github', 'create_issue')).toBe('call');
  });

  it('lets the admin group, the admin role or a vouched admin do everything', () => {
    for (const p of [user('a', ['mcp-admin']), user('b', [], ['MCP-Admin']), { ...user('c'), admin: true }]) {
      const access = accessFor(p, rules, settings);
      expect(access.admin).toBe(true);
      expect(access.level('anything', 'delete_everything')).toBe('call');
    }
  });

  it('gives principals with the same applicable rules the same view key', () => {
    const a = accessFor(user('x@example.com', ['ops']), rules, settings);
    const b = accessFor(user('y@example.com', ['ops']), rules, settings);
    const c = accessFor(user('alice@example.com', ['ops']), rules, settings);
    expect(a.key).toBe(b.key);
    expect(a.key).not.toBe(c.key);
  });
});

describe('restricted catalog view', () => {
  const offers = ['github', 'k8s'].map((server) => ({
    server,
    prefix: server,
    separator: '__',
    tags: ['infra'],
    tools: ['get_pods', 'delete_repo', 'search'].map((name) => ({ name, inputSchema: { type: 'object' as const } })),
    prompts: [{ name: 'hello' }],
    resources: [{ uri: `${server}://readme`, name: 'readme' }],
    templates: [],
  }));
  const tools = buildToolCatalog(offers);
  const view = restrictedView(tools, buildPromptCatalog(offers), buildResourceCatalog(offers), (server, tool) => server === 'k8s' && tool !== 'delete_repo');

  it('keeps names and narrows broadcasts to the visible servers', () => {
    expect(view.tools.map((t) => t.name).filter((n) => n.startsWith('k8s__') || n.startsWith('github__'))).toEqual(['k8s__get_pods', 'k8s__search']);
    expect(view.routes.get('broadcast__search')).toEqual({ kind: 'broadcast', tool: 'search', servers: ['k8s'] });
    expect(view.routes.has('broadcast__delete_repo')).toBe(false);
    expect(view.routes.get('broadcast__by_tag__infra')).toMatchObject({ servers: ['k8s'] });
    expect(view.prompts.map((p) => p.name)).toEqual(['k8s__hello']);
    expect(view.resources.map((r) => r.uri)).toEqual(['k8s://readme']);
  });
});

describe('principals from claims', () => {
  const mapping = { subject: 'sub', email: 'preferred_username', groups: 'groups', roles: 'realm_access.roles' };
  it('reads dotted paths, list claims as arrays or strings, and Entra-style scp', () => {
    const p = principalFromClaims({ sub: 's1', preferred_username: 'x@y.z', groups: 'a, b', realm_access: { roles: ['admin'] } }, mapping, 'oauth', scopesOf({ scp: 'mcp.read mcp.call' }));
    expect(p).toMatchObject({ id: 'x@y.z', subject: 's1', groups: ['a', 'b'], roles: ['admin'], scopes: ['mcp.read', 'mcp.call'] });
    expect(principalFromClaims({ email: 'x' }, mapping, 'oauth')).toBeUndefined();
    expect(scopesOf({ scp: ['a', 'b'] })).toEqual(['a', 'b']);
  });
});

describe('trusted proxies', () => {
  it('matches addresses and CIDR ranges, IPv4-mapped IPv6 included, and rejects bad entries', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
    expect(proxies.has('10.2.3.4')).toBe(true);
    expect(proxies.has('::ffff:10.2.3.4')).toBe(true);
    expect(proxies.has('192.168.1.7')).toBe(true);
    expect(proxies.has('192.168.1.8')).toBe(false);
    expect(proxies.has('fd12::1')).toBe(true);
    expect(proxies.has('unknown')).toBe(false);
    expect(() => new TrustedProxies(['10.0.0.0/33'])).toThrow(/prefix/);
    expect(() => new TrustedProxies(['example.com'])).toThrow(/not an IP/);
  });
});

describe('auth settings', () => {
  it('names bad proxy entries and short secrets at load time', async () => {
    const { GatewaySettingsSchema } = await import('../../src/config/schema.js');
    const bad = GatewaySettingsSchema.safeParse({ auth: { trustedHeaders: { proxies: ['10.0.0.0/40', 'proxy.local'] }, jwt: { secret: 'short' } } });
    expect(bad.success).toBe(false);
    const messages = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^auth\.trustedHeaders\.proxies\.0: must be an IP address/),
        expect.stringMatching(/^auth\.trustedHeaders\.proxies\.1: must be an IP address/),
        expect.stringMatching(/^auth\.jwt\.secret: use a secret of at least 32/),
      ]),
    );
    expect(GatewaySettingsSchema.parse({}).auth).toBe('none');
    const empty = GatewaySettingsSchema.safeParse({ auth: {} });
    expect(empty.error?.issues.map((i) => i.message)).toEqual([expect.stringContaining('enable at least one of oauth')]);
  });
});

describe('verdict cache', () => {
  it('remembers a verified token until its exp, and no longer', async () => {
    const { VerdictCache } = await import('../../src/auth/verdict-cache.js');
    const cache = new VerdictCache();
    const alice = user('alice@example.com');
    cache.set('t1', alice, 1000);
    cache.set('t2', alice, undefined);
    expect(cache.get('t1', 999_999)).toBe(alice);
    expect(cache.get('t1', 1_000_000)).toBeUndefined();
    expect(cache.get('t2', 0)).toBeUndefined();
  });
});

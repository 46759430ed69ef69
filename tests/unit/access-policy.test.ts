import { describe, expect, it } from 'vitest';
import { accessFor, rulesFromSettings } from '../../src/auth/access-policy.js';
import { identityKey } from '../../src/auth/identity-key.js';
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
    for (const p of [user('a', ['MCP-Admin']), user('b', [], ['MCP-Admin']), { ...user('c'), admin: true }]) {
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

describe('identities are compared as exact keys', () => {
  const admin = (p: Principal) => accessFor(p, rules, settings).admin;
  const aliceLevel = (p: Principal) => accessFor(p, rules, settings).level('github', 'create_issue');

  it('refuses look-alikes of the admin group: fullwidth letters, a zero-width space, another case', () => {
    expect(admin(user('x@example.com', ['MCP-Admin']))).toBe(true);
    for (const group of ['\uFF2D\uFF23\uFF30-\uFF21\uFF44\uFF4D\uFF49\uFF4E', 'MCP\u200b-Admin', 'mcp-admin', 'MCP-ADMIN']) {
      expect(admin(user('x@example.com', [group])), group).toBe(false);
      expect(admin(user('x@example.com', [], [group])), `role ${group}`).toBe(false);
    }
  });

  it('refuses look-alikes of a user named in a grant', () => {
    expect(aliceLevel(user('alice@example.com'))).toBe('call');
    for (const id of ['\uFF41\uFF4C\uFF49\uFF43\uFF45@example.com', 'alice\u200b@example.com', 'alice@example.com\u200b']) {
      const p: Principal = { id, subject: id, email: id, groups: [], roles: [], scopes: [], method: 'jwt' };
      expect(aliceLevel(p), id).toBe('none');
    }
  });

  it('matches an email in any ASCII case, on the principal and in the rule', () => {
    const p = principalFromClaims({ sub: 'u-1', email: 'Alice@Example.com' }, { subject: 'sub', email: 'email', groups: 'groups', roles: 'roles' }, 'jwt')!;
    expect(p.id).toBe('alice@example.com');
    expect(aliceLevel(p)).toBe('call');
    const upperRule = rulesFromSettings({ grants: [{ user: 'ALICE@EXAMPLE.COM', servers: ['github'], level: 'read' }], toolRules: [] });
    expect(accessFor(user('alice@example.com'), upperRule, settings).level('github')).toBe('read');
  });

  it('keeps opaque subjects case-sensitive', () => {
    const bySubject = rulesFromSettings({ grants: [{ user: 'AbC-123', servers: ['github'], level: 'read' }], toolRules: [] });
    const p = (sub: string): Principal => ({ id: sub, subject: sub, groups: [], roles: [], scopes: [], method: 'jwt' });
    expect(accessFor(p('AbC-123'), bySubject, settings).level('github')).toBe('read');
    expect(accessFor(p('abc-123'), bySubject, settings).level('github')).toBe('none');
  });

  it('treats a composed and a decomposed é as one name (NFC), for users and groups', () => {
    const composed = 'jos\u00e9@example.com';
    const decomposed = 'jose\u0301@example.com';
    expect(composed).not.toBe(decomposed);
    expect(identityKey(decomposed, 'user')).toBe(identityKey(composed, 'user'));
    const byUser = rulesFromSettings({ grants: [{ user: composed, servers: ['github'], level: 'read' }, { group: '\u00e9quipe', servers: ['k8s'], level: 'read' }], toolRules: [] });
    expect(accessFor(user(decomposed), byUser, settings).level('github')).toBe('read');
    expect(accessFor(user('x@example.com', ['e\u0301quipe']), byUser, settings).level('k8s')).toBe('read');
    expect(accessFor(user('x@example.com', ['\u00c9quipe']), byUser, settings).level('k8s')).toBe('none'); // groups keep their case
  });

  it('gives the principal id as the key used for sessions and rate limits', () => {
    const mapping = { subject: 'sub', email: 'email', groups: 'groups', roles: 'roles' };
    expect(principalFromClaims({ sub: 'u', email: 'Bob@Example.COM' }, mapping, 'jwt')!.id).toBe('bob@example.com');
    expect(principalFromClaims({ sub: 'Opaque-ID' }, mapping, 'jwt')!.id).toBe('Opaque-ID');
    expect(principalFromClaims({ sub: 'u', email: 'jose\u0301@example.com', exp: 1_900_000_000 }, mapping, 'jwt')).toMatchObject({ id: 'jos\u00e9@example.com', expiresAt: 1_900_000_000_000 });
    expect(identityKey('\uFF41lice@example.com', 'user')).not.toBe('alice@example.com');
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

  it('keeps names, and shows no broadcast over fewer than two servers the caller may call', () => {
    expect(view.tools.map((t) => t.name).filter((n) => n.startsWith('k8s__') || n.startsWith('github__'))).toEqual(['k8s__get_pods', 'k8s__search']);
    // Kept over k8s alone, it would tell that a server the caller cannot see offers `search` too.
    expect(view.routes.has('broadcast__search')).toBe(false);
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

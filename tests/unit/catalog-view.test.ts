import type { Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { restrictedView } from '../../src/catalog/catalog-view.js';
import { buildPromptCatalog } from '../../src/catalog/prompt-catalog.js';
import { buildResourceCatalog } from '../../src/catalog/resource-catalog.js';
import { buildToolCatalog } from '../../src/catalog/tool-catalog.js';

/** Three servers whose shared `search` differs in schema and description, tagged alike. */
const offers = ['github', 'gitlab', 'k8s'].map((server) => ({
  server,
  prefix: server,
  separator: '__',
  tags: ['infra', `${server}-team`],
  tools: [
    { name: 'search', description: `Searches ${server}`, inputSchema: { type: 'object' as const, properties: { q: { type: 'string' }, [`${server}_scope`]: { type: 'string' } } } },
    { name: `${server}_only`, inputSchema: { type: 'object' as const } },
    { name: 'delete', inputSchema: { type: 'object' as const } },
  ],
  prompts: [],
  resources: [],
  templates: [],
}));

function viewFor(visible: (server: string, tool?: string) => boolean, callable: (server: string, tool?: string) => boolean) {
  const tools = buildToolCatalog(offers);
  return restrictedView(tools, buildPromptCatalog(offers), buildResourceCatalog(offers), visible, callable);
}

const find = (tools: readonly Tool[], name: string) => tools.find((t) => t.name === name);

describe('generated tools in a restricted view', () => {
  it('remakes a broadcast from the callable servers alone: schema, description, servers and tags', () => {
    const view = viewFor(() => true, (server) => server !== 'github');
    const search = find(view.tools, 'broadcast__search')!;
    expect(Object.keys(search.inputSchema.properties!).sort()).toEqual(['gitlab_scope', 'k8s_scope', 'q', 'servers', 'tags']);
    expect(search.inputSchema.properties!.servers).toMatchObject({ items: { enum: ['gitlab', 'k8s'] } });
    expect(search.inputSchema.properties!.tags).toMatchObject({ items: { enum: ['gitlab-team', 'infra', 'k8s-team'] } });
    expect(search.description).toBe('Runs "search" on every server that offers it (gitlab, k8s) at once and returns each server\'s result, labelled. Searches gitlab');
    expect(JSON.stringify(view.tools.filter((t) => t.name.startsWith('broadcast__')))).not.toContain('github');
    expect(view.routes.get('broadcast__search')).toEqual({ kind: 'broadcast', tool: 'search', servers: ['gitlab', 'k8s'] });
    // github's tools stay listed: visible is not callable.
    expect(find(view.tools, 'github__search')).toBeDefined();
  });

  it('narrows tag tools to the callable tools of the callable servers', () => {
    const view = viewFor(() => true, (server, tool) => server === 'k8s' && tool !== 'delete');
    const infra = find(view.tools, 'broadcast__by_tag__infra')!;
    expect(infra.inputSchema.properties!.tool).toMatchObject({ enum: ['k8s_only', 'search'] });
    expect(infra.description).toContain('(k8s)');
    expect(view.routes.get('broadcast__by_tag__infra')).toEqual({ kind: 'tag', tag: 'infra', servers: ['k8s'] });
    expect(view.routes.has('broadcast__by_tag__github-team')).toBe(false);
    expect(view.routes.has('broadcast__delete')).toBe(false);
  });

  it('drops a broadcast left with one callable server: the full catalog makes none for a single server', () => {
    // k8s alone is callable: a broadcast__search over k8s would say that a hidden server offers search too.
    const view = viewFor((server) => server === 'k8s', (server) => server === 'k8s');
    expect(find(view.tools, 'broadcast__search')).toBeUndefined();
    expect(view.routes.has('broadcast__search')).toBe(false);
    expect(view.routes.has('broadcast__delete')).toBe(false);
    // The same view the full catalog gives a gateway that has k8s alone: no broadcast at all.
    const alone = buildToolCatalog(offers.filter((o) => o.server === 'k8s'));
    expect(view.tools.map((t) => t.name).filter((n) => n.startsWith('broadcast__')).sort()).toEqual(alone.tools.map((t) => t.name).filter((n) => n.startsWith('broadcast__')).sort());
    // Tag tools follow the full catalog's own rule (one tagged server is enough), so k8s's tags keep theirs.
    expect(find(view.tools, 'broadcast__by_tag__infra')?.description).toContain('(k8s)');
    expect(view.routes.get('broadcast__by_tag__k8s-team')).toEqual({ kind: 'tag', tag: 'k8s-team', servers: ['k8s'] });
    expect(view.routes.has('broadcast__by_tag__github-team')).toBe(false);
  });

  it('drops a broadcast no server of which is callable, and keeps the full catalog\'s names', () => {
    const readOnly = viewFor(() => true, () => false);
    expect(readOnly.tools.filter((t) => t.name.startsWith('broadcast__'))).toEqual([]);
    expect([...readOnly.routes.keys()].filter((n) => n.startsWith('broadcast__'))).toEqual([]);

    const everything = viewFor(() => true, () => true);
    const full = buildToolCatalog(offers);
    expect(everything.tools.map((t) => t.name)).toEqual(full.tools.map((t) => t.name));
    expect(find(everything.tools, 'broadcast__search')).toEqual(find(full.tools, 'broadcast__search'));
  });
});

describe('exposed names in a restricted view', () => {
  /** `visible` and a hidden server that want the same exposed name `shared__lookup`. */
  const contest = (hidden: string) =>
    [hidden, 'visible'].map((server) => ({
      server,
      prefix: 'shared',
      separator: '__',
      tools: [{ name: 'lookup', inputSchema: { type: 'object' as const } }],
      prompts: [],
      resources: [],
      templates: [],
    }));
  const visibleName = (hidden: string) => {
    const offers = contest(hidden);
    const view = restrictedView(buildToolCatalog(offers), buildPromptCatalog(offers), buildResourceCatalog(offers), (server) => server === 'visible');
    return view.tools.map((t) => t.name);
  };

  it('suffix a collision loser with a hash of its own server and tool, never of the hidden winner', () => {
    // The suffix tells the caller that some hidden tool wanted the same name (a known limit of
    // names shared by every caller), but not which server: any hidden winner gives the same name.
    const [name] = visibleName('a-hidden');
    expect(name).toMatch(/^shared__lookup_[0-9a-f]{8}$/);
    expect(visibleName('another-hidden-server')).toEqual([name]);
  });
});

import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { restrictedView } from '../../src/catalog/catalog-view.js';
import { buildPromptCatalog } from '../../src/catalog/prompt-catalog.js';
import { buildResourceCatalog } from '../../src/catalog/resource-catalog.js';
import { buildToolCatalog } from '../../src/catalog/tool-catalog.js';

/** Two servers whose shared `search` differs in schema and description, tagged alike. */
const offers = ['github', 'k8s'].map((server) => ({
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
    const view = viewFor(() => true, (server) => server === 'k8s');
    const search = find(view.tools, 'broadcast__search')!;
    expect(Object.keys(search.inputSchema.properties!).sort()).toEqual(['k8s_scope', 'q', 'servers', 'tags']);
    expect(search.inputSchema.properties!.servers).toMatchObject({ items: { enum: ['k8s'] } });
    expect(search.inputSchema.properties!.tags).toMatchObject({ items: { enum: ['infra', 'k8s-team'] } });
    expect(search.description).toBe('Runs "search" on every server that offers it (k8s) at once and returns each server\'s result, labelled. Searches k8s');
    expect(JSON.stringify(view.tools.filter((t) => t.name.startsWith('broadcast__')))).not.toContain('github');
    expect(view.routes.get('broadcast__search')).toEqual({ kind: 'broadcast', tool: 'search', servers: ['k8s'] });
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

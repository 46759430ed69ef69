import type { Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { shortHash } from '../../src/catalog/naming.js';
import { buildToolCatalog, type UpstreamTools } from '../../src/catalog/tool-catalog.js';
import { pageOf } from '../../src/gateway/list-page.js';

const tool = (name: string, extra: Partial<Tool> = {}): Tool => ({ name, inputSchema: { type: 'object' }, ...extra });
const upstream = (server: string, names: string[], extra: Partial<UpstreamTools> = {}): UpstreamTools => ({
  server,
  prefix: server,
  separator: '__',
  tools: names.map((n) => tool(n)),
  ...extra,
});

describe('buildToolCatalog', () => {
  it('namespaces every tool and routes back to the original name', () => {
    const catalog = buildToolCatalog([upstream('b', ['echo']), upstream('a', ['echo', 'add'])], { broadcasts: false });
    expect(catalog.tools.map((t) => t.name)).toEqual(['a__echo', 'a__add', 'b__echo']);
    expect(catalog.routes.get('b__echo')).toEqual({ kind: 'upstream', server: 'b', originalName: 'echo' });
  });

  it('keeps schemas, annotations, title and output schema', () => {
    const rich = tool('add', {
      title: 'Add',
      description: 'adds',
      annotations: { readOnlyHint: true },
      outputSchema: { type: 'object', properties: { sum: { type: 'number' } } },
    });
    const catalog = buildToolCatalog([{ ...upstream('m', []), tools: [rich] }]);
    expect(catalog.tools[0]).toEqual({ ...rich, name: 'm__add' });
  });

  it('resolves a collision the same way whatever the connection order', () => {
    const x = upstream('x', ['echo'], { prefix: '' });
    const y = upstream('y', ['echo'], { prefix: '' });
    const one = buildToolCatalog([x, y], { broadcasts: false });
    const two = buildToolCatalog([y, x], { broadcasts: false });
    const suffixed = `echo_${shortHash('y\0echo')}`;
    expect(one.tools.map((t) => t.name)).toEqual(['echo', suffixed]);
    expect(two.tools.map((t) => t.name)).toEqual(['echo', suffixed]);
    expect(one.routes.get(suffixed)).toEqual({ kind: 'upstream', server: 'y', originalName: 'echo' });
  });

  it('does not route by splitting names: a prefix containing the separator still routes', () => {
    const catalog = buildToolCatalog([upstream('a__b', ['c']), upstream('a', ['b__c'])], { broadcasts: false });
    const names = catalog.tools.map((t) => t.name);
    expect(new Set(names).size).toBe(2);
    expect(catalog.routes.get('a__b__c')).toEqual({ kind: 'upstream', server: 'a', originalName: 'b__c' });
    const other = names.find((n) => n !== 'a__b__c')!;
    expect(catalog.routes.get(other)).toEqual({ kind: 'upstream', server: 'a__b', originalName: 'c' });
  });

  it('applies allow and deny globs, and hidden tools get no route', () => {
    const catalog = buildToolCatalog([
      upstream('fs', ['read_file', 'read_dir', 'write_file', 'move_file'], { filter: { allow: ['read_*', 'write_*'], deny: ['*_dir'] } }),
    ]);
    expect(catalog.tools.map((t) => t.name)).toEqual(['fs__read_file', 'fs__write_file']);
    expect(catalog.routes.has('fs__move_file')).toBe(false);
    expect(catalog.routes.has('fs__read_dir')).toBe(false);
  });

  it('applies overrides of name, title, description and annotations', () => {
    const catalog = buildToolCatalog([
      {
        ...upstream('gh', []),
        tools: [tool('search_repositories', { description: 'old', annotations: { readOnlyHint: true } })],
        filter: { overrides: { search_repositories: { name: 'find_repos', title: 'Find', description: 'new', annotations: { openWorldHint: true } } } },
      },
    ]);
    expect(catalog.tools[0]).toMatchObject({
      name: 'find_repos',
      title: 'Find',
      description: 'new',
      annotations: { readOnlyHint: true, openWorldHint: true },
    });
    expect(catalog.routes.get('find_repos')).toEqual({ kind: 'upstream', server: 'gh', originalName: 'search_repositories' });
  });
});

describe('pageOf', () => {
  const tools = Array.from({ length: 5 }, (_, i) => tool(`t${i}`));

  it('returns everything without a cursor when it fits', () => {
    expect(pageOf(tools, undefined, 10)).toEqual({ items: tools });
  });

  it('pages with an opaque cursor until the end', () => {
    const first = pageOf(tools, undefined, 2);
    expect(first.items.map((t) => t.name)).toEqual(['t0', 't1']);
    const second = pageOf(tools, first.nextCursor, 2);
    const third = pageOf(tools, second.nextCursor, 2);
    expect(second.items.map((t) => t.name)).toEqual(['t2', 't3']);
    expect(third).toEqual({ items: [tools[4]] });
  });

  it('rejects a forged cursor', () => {
    expect(() => pageOf(tools, 'bogus', 2)).toThrow(/Invalid cursor/);
  });
});

import type { Resource, ResourceTemplateType as ResourceTemplate, Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { LiveCatalog, type UpstreamOffer } from '../../src/catalog/live-catalog.js';
import { appResourceUri, offersWithAppResourceUris, withAppResourceUris } from '../../src/catalog/mcp-app-uris.js';
import { buildResourceCatalog, routeResourceUri, type UpstreamResources } from '../../src/catalog/resource-catalog.js';

const APP_MIME = 'text/html;profile=mcp-app';
const resource = (uri: string): Resource => ({ uri, name: uri, mimeType: APP_MIME });
const template = (uriTemplate: string): ResourceTemplate => ({ uriTemplate, name: uriTemplate, mimeType: APP_MIME });
const upstream = (server: string, uris: string[], templates: string[] = []): UpstreamResources => ({
  server,
  resources: uris.map(resource),
  templates: templates.map(template),
});
const appTool = (name: string, meta: Record<string, unknown>): Tool => ({ name, inputSchema: { type: 'object' }, _meta: meta });

describe('appResourceUri', () => {
  const catalog = buildResourceCatalog([upstream('beta', ['ui://widget']), upstream('alpha', ['ui://widget', 'ui://x'])]);

  it('points each server at its own copy of a shared ui:// resource, which reads back there', () => {
    const alpha = appResourceUri(catalog, 'alpha', 'ui://widget');
    const beta = appResourceUri(catalog, 'beta', 'ui://widget');
    expect(alpha).toBe('conflux://alpha/ui://widget');
    expect(beta).toBe('conflux://beta/ui://widget');
    expect(catalog.resources.map((r) => r.uri)).toEqual(expect.arrayContaining([alpha, beta]));
    expect(routeResourceUri(catalog, alpha)).toEqual({ server: 'alpha', originalUri: 'ui://widget' });
    expect(routeResourceUri(catalog, beta)).toEqual({ server: 'beta', originalUri: 'ui://widget' });
  });

  it('keeps a ui:// resource only one server offers', () => {
    expect(appResourceUri(catalog, 'alpha', 'ui://x')).toBe('ui://x');
  });

  it('leaves a ui:// resource no server offers as it is', () => {
    expect(appResourceUri(catalog, 'alpha', 'ui://missing')).toBe('ui://missing');
    expect(appResourceUri(buildResourceCatalog([]), 'alpha', 'ui://widget')).toBe('ui://widget');
  });

  it('never lets an unlisted resource lead to the server that does list that URI', () => {
    // beta's tool names ui://x without listing it (apps may leave their views out of resources/list); alpha lists ui://x.
    const uri = appResourceUri(catalog, 'beta', 'ui://x');
    expect(uri).toBe('conflux://beta/ui://x');
    expect(routeResourceUri(catalog, uri)).toEqual({ server: 'beta', originalUri: 'ui://x' });
  });

  it('follows templates: kept when the server owns the first match, the gateway form when it shares the template or another server matches first', () => {
    const own = buildResourceCatalog([upstream('alpha', [], ['ui://view/{id}'])]);
    expect(appResourceUri(own, 'alpha', 'ui://view/7')).toBe('ui://view/7');

    const shared = buildResourceCatalog([upstream('alpha', [], ['ui://view/{id}']), upstream('beta', [], ['ui://view/{id}'])]);
    for (const server of ['alpha', 'beta']) {
      const uri = appResourceUri(shared, server, 'ui://view/7');
      expect(uri).toBe(`conflux://${server}/ui://view/7`);
      expect(routeResourceUri(shared, uri)).toEqual({ server, originalUri: 'ui://view/7' });
    }

    const overlapping = buildResourceCatalog([upstream('alpha', [], ['ui://{kind}/{id}']), upstream('beta', [], ['ui://view/{id}'])]);
    expect(appResourceUri(overlapping, 'alpha', 'ui://view/7')).toBe('ui://view/7');
    expect(appResourceUri(overlapping, 'beta', 'ui://view/7')).toBe('conflux://beta/ui://view/7');
  });
});

describe('withAppResourceUris', () => {
  const catalog = buildResourceCatalog([upstream('alpha', ['ui://widget', 'ui://x']), upstream('beta', ['ui://widget'])]);

  it('rewrites _meta.ui.resourceUri and keeps the rest of _meta', () => {
    const tool = appTool('show', { ui: { resourceUri: 'ui://widget', visibility: ['model', 'app'] }, other: 1 });
    expect(withAppResourceUris(tool, 'beta', catalog)._meta).toEqual({
      ui: { resourceUri: 'conflux://beta/ui://widget', visibility: ['model', 'app'] },
      other: 1,
    });
    expect(tool._meta).toEqual({ ui: { resourceUri: 'ui://widget', visibility: ['model', 'app'] }, other: 1 });
  });

  it('rewrites the flat ui/resourceUri key, alone or beside the nested one', () => {
    expect(withAppResourceUris(appTool('show', { 'ui/resourceUri': 'ui://widget' }), 'alpha', catalog)._meta).toEqual({
      'ui/resourceUri': 'conflux://alpha/ui://widget',
    });
    expect(withAppResourceUris(appTool('show', { ui: { resourceUri: 'ui://widget' }, 'ui/resourceUri': 'ui://widget' }), 'alpha', catalog)._meta).toEqual({
      ui: { resourceUri: 'conflux://alpha/ui://widget' },
      'ui/resourceUri': 'conflux://alpha/ui://widget',
    });
  });

  it('returns the same tool when there is nothing to rewrite', () => {
    const plain: Tool = { name: 'plain', inputSchema: { type: 'object' } };
    const unique = appTool('unique', { ui: { resourceUri: 'ui://x' }, 'ui/resourceUri': 'ui://x' });
    const missing = appTool('missing', { ui: { resourceUri: 'ui://missing' } });
    const notUi = appTool('not_ui', { ui: { resourceUri: 'https://example.com/widget' } });
    const odd = appTool('odd', { ui: 'ui://widget', 'ui/resourceUri': 42 });
    for (const tool of [plain, unique, missing, notUi, odd]) expect(withAppResourceUris(tool, 'alpha', catalog)).toBe(tool);
  });

  it('keeps upstreams without app tools as the same objects', () => {
    const offers = [
      { server: 'alpha', tools: [appTool('show', { ui: { resourceUri: 'ui://widget' } })] },
      { server: 'beta', tools: [appTool('plain', {})] },
    ];
    const rewritten = offersWithAppResourceUris(offers, catalog);
    expect(rewritten[1]).toBe(offers[1]);
    expect(rewritten[0]!.tools[0]!._meta).toEqual({ ui: { resourceUri: 'conflux://alpha/ui://widget' } });
  });
});

describe('LiveCatalog with app tools', () => {
  const offer = (server: string, resources: string[]): UpstreamOffer => ({
    server,
    prefix: server,
    separator: '__',
    tags: [],
    tools: [appTool('show', { ui: { resourceUri: 'ui://widget' } })],
    prompts: [],
    resources: resources.map(resource),
    templates: [],
  });
  const uriOf = (catalog: LiveCatalog, name: string) => (catalog.current.tools.find((t) => t.name === name)?._meta?.ui as { resourceUri?: string }).resourceUri;

  it('lists each tool with its own server resource, and tells clients when a second server makes the URI shared', () => {
    const catalog = new LiveCatalog({ broadcasts: false });
    catalog.update([offer('alpha', ['ui://widget'])]);
    expect(uriOf(catalog, 'alpha__show')).toBe('ui://widget');

    const changes = catalog.update([offer('alpha', ['ui://widget']), offer('beta', ['ui://widget'])]);
    expect(changes.tools).toBe(true);
    expect(uriOf(catalog, 'alpha__show')).toBe('conflux://alpha/ui://widget');
    expect(uriOf(catalog, 'beta__show')).toBe('conflux://beta/ui://widget');
    expect(JSON.parse(catalog.toolsJson)).toEqual(catalog.current.tools);
    expect(catalog.current.upstreamTools.map((t) => (t.tool._meta?.ui as { resourceUri: string }).resourceUri)).toEqual([
      'conflux://alpha/ui://widget',
      'conflux://beta/ui://widget',
    ]);
  });
});

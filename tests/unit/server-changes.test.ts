import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { CATALOG_FIELDS, serverChange, serverChanges, splitServerConfig } from '../../src/config/server-changes.js';

/** One server definition as the config file gives it, parsed (defaults filled in). */
function server(entry: Record<string, unknown>): ServerConfig {
  return parseConfig(JSON.stringify({ servers: { s: entry } }), { source: 'test', env: {} }).servers.s!;
}

const stdio = { command: 'node', args: ['server.js'], env: { MODE: 'a' } };
const http = { url: 'http://127.0.0.1:3001/mcp', headers: { 'X-Key': 'k' } };
const replicated = { transport: 'streamable-http', urls: ['http://127.0.0.1:3001/mcp', 'http://127.0.0.1:3002/mcp'] };

describe('splitting a server definition into connection and catalog settings', () => {
  it('puts the catalog fields in the catalog part and everything else in the connection part', () => {
    const config = server({ ...stdio, description: 'd', tags: ['x'], prefix: 'p', tools: { deny: ['rm*'] }, required: true, timeout: 5 });
    const { connection, catalog } = splitServerConfig(config);
    expect(catalog).toEqual({ description: 'd', tags: ['x'], prefix: 'p', separator: '__', tools: { deny: ['rm*'] }, required: true });
    expect(connection).toEqual({ transport: 'stdio', command: 'node', args: ['server.js'], env: { MODE: 'a' }, enabled: true, timeout: 5 });
    // Together they are the whole definition, each field in one part only.
    expect({ ...connection, ...catalog }).toEqual(config);
    expect(Object.keys(connection).filter((key) => Object.keys(catalog).includes(key))).toEqual([]);
  });

  it('leaves fields that are not written out of both parts', () => {
    const { connection, catalog } = splitServerConfig(server(http));
    expect(catalog).not.toHaveProperty('description');
    expect(catalog).not.toHaveProperty('tools');
    expect(connection).not.toHaveProperty('description');
    expect(Object.keys(catalog).sort()).toEqual(['required', 'separator', 'tags']);
  });

  it('names the catalog fields the schema has in common for every kind of server', () => {
    for (const kind of [stdio, http, replicated]) {
      const config = server({ ...kind, description: 'd', prefix: 'p', tools: { allow: ['a'] } });
      for (const field of CATALOG_FIELDS) expect(config).toHaveProperty(field);
    }
  });
});

describe('how a changed definition affects a running server', () => {
  it('is unchanged when the definitions are equal', () => {
    expect(serverChange(server(stdio), server(stdio))).toBe('unchanged');
  });

  it.each([
    ['a description', { description: 'now described' }],
    ['tags', { tags: ['files'] }],
    ['tools.deny', { tools: { deny: ['write_*'] } }],
    ['tools.allow', { tools: { allow: ['read_*'] } }],
    ['a tool override', { tools: { overrides: { read: { description: 'Reads', name: 'fetch' } } } }],
    ['the prefix', { prefix: 'fs' }],
    ['the separator', { separator: '_' }],
    ['required', { required: true }],
  ])('changes the catalog only for %s', (_what, change) => {
    expect(serverChange(server(stdio), server({ ...stdio, ...change }))).toBe('catalog');
    expect(serverChange(server(http), server({ ...http, ...change }))).toBe('catalog');
    expect(serverChange(server(replicated), server({ ...replicated, ...change }))).toBe('catalog');
  });

  it.each([
    ['an env var', { env: { MODE: 'b' } }],
    ['the args', { args: ['other.js'] }],
    ['the command', { command: 'python3' }],
    ['the working folder', { cwd: '/srv' }],
    ['the timeout', { timeout: 5 }],
    ['the connect timeout', { connectTimeout: 5 }],
    ['enabled', { enabled: false }],
    ['roots', { roots: [{ uri: 'file:///srv' }] }],
    ['processes', { processes: 'one' }],
    ['shared', { shared: false }],
  ])('changes the connection of a stdio server for %s', (_what, change) => {
    expect(serverChange(server(stdio), server({ ...stdio, ...change }))).toBe('connection');
  });

  it.each([
    ['the URL', { url: 'http://127.0.0.1:3009/mcp' }],
    ['a header', { headers: { 'X-Key': 'other' } }],
    ['the auth', { auth: { method: 'bearer', credential: 'env://TOKEN' } }],
    ['the transport', { transport: 'sse' }],
  ])('changes the connection of an HTTP server for %s', (_what, change) => {
    expect(serverChange(server(http), server({ ...http, ...change }))).toBe('connection');
  });

  it('changes the connection of a replicated server for its replicas or its strategy', () => {
    expect(serverChange(server(replicated), server({ ...replicated, urls: [...replicated.urls, 'http://127.0.0.1:3003/mcp'] }))).toBe('connection');
    expect(serverChange(server(replicated), server({ ...replicated, balance: { strategy: 'random' } }))).toBe('connection');
  });

  it('changes the connection when a catalog field and a connection field change together', () => {
    expect(serverChange(server(stdio), server({ ...stdio, description: 'd', env: { MODE: 'b' } }))).toBe('connection');
  });
});

describe('what a new set of definitions changes', () => {
  it('sorts each server into added, removed, reconnected or updated in place, leaving the unchanged out', () => {
    const running = { kept: server(stdio), gone: server(http), moved: server(http), described: server(stdio) };
    const next = { kept: server(stdio), moved: server({ ...http, url: 'http://127.0.0.1:4000/mcp' }), described: server({ ...stdio, description: 'd' }), fresh: server(http) };
    expect(serverChanges(running, next)).toEqual({ added: ['fresh'], removed: ['gone'], reconnected: ['moved'], updated: ['described'] });
  });

  it('takes a server named like an object property for a server', () => {
    expect(serverChanges({}, { constructor: server(stdio) })).toEqual({ added: ['constructor'], removed: [], reconnected: [], updated: [] });
    expect(serverChanges({ constructor: server(stdio) }, {})).toEqual({ added: [], removed: ['constructor'], reconnected: [], updated: [] });
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const serverWith = (roots: string) => `servers:\n  files:\n    command: node\n    roots: ${roots}\n`;
const parse = (text: string) => parseConfig(text, { source: 'test.yaml', env: { PROJECT: '/srv/project' } });

function problemsOf(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

describe('server roots in the config', () => {
  it('are absent unless given, on stdio and HTTP servers alike', () => {
    const config = parse('servers:\n  a:\n    command: node\n  b:\n    url: http://127.0.0.1:3001/mcp\n');
    expect(config.servers.a!.roots).toBeUndefined();
    expect(config.servers.b!.roots).toBeUndefined();
    expect(parse('servers:\n  b:\n    url: http://127.0.0.1:3001/mcp\n    roots: [{ uri: "file:///srv" }]\n').servers.b!.roots).toEqual([{ uri: 'file:///srv' }]);
  });

  it('accept absolute file URIs with an optional name, kept in normalised form', () => {
    const config = parse(serverWith('[{ uri: "file:///srv/project", name: project }, { uri: "file:///srv/a b/../c d" }, { uri: "file:///C:/work" }]'));
    expect(config.servers.files!.roots).toEqual([
      { uri: 'file:///srv/project', name: 'project' },
      { uri: 'file:///srv/c%20d' },
      { uri: 'file:///C:/work' },
    ]);
  });

  it('take ${VAR} like any string, checked after interpolation', () => {
    expect(parse(serverWith('[{ uri: "file://${PROJECT}/demo" }]')).servers.files!.roots).toEqual([{ uri: 'file:///srv/project/demo' }]);
  });

  it.each([
    ['a relative path', './demo'],
    ['an absolute path without a scheme', '/srv/project'],
    ['a scheme-relative file URI', 'file:demo'],
    ['a file URI with a host', 'file://./demo'],
    ['a file URI naming another host', 'file://fileserver/share'],
    ['a file URI naming localhost (file:/// is the one spelling taken)', 'file://localhost/tmp'],
    ['another scheme', 'https://example.com/project'],
    ['an encoded slash', 'file:///srv/a%2Fb'],
  ])('reject %s', (_what, uri) => {
    expect(problemsOf(serverWith(`[{ uri: "${uri}" }]`))).toEqual(['servers.files.roots[0].uri: expected an absolute file URI such as file:///srv/project']);
  });

  it('reject an empty name, unknown keys and a missing uri', () => {
    expect(problemsOf(serverWith('[{ uri: "file:///srv", name: "" }]'))).toEqual([expect.stringMatching(/^servers\.files\.roots\[0\]\.name: /)]);
    expect(problemsOf(serverWith('[{ uri: "file:///srv", path: /srv }]'))).toEqual(['servers.files.roots[0]: unknown key "path"']);
    expect(problemsOf(serverWith('[{ name: srv }]'))).toEqual(['servers.files.roots[0].uri: is required']);
  });
});

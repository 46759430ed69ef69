import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpolateEnv } from '../../src/config/interpolate.js';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.js';
import { changedGatewaySettings } from '../../src/config/watch.js';

const parse = (text: string, env: Record<string, string> = {}) => parseConfig(text, { source: 'test.yaml', env });

function problemsOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parse(text, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('parses the documented example with defaults filled in', () => {
    const config = parse(`
servers:
  everything:
    transport: stdio
    command: npx
    args: [mcp-server-everything, stdio]
    tags: [demo]
  remote:
    transport: streamable-http
    url: http://127.0.0.1:3001/mcp
    headers: { X-API-Key: "\${REMOTE_KEY}" }
    timeout: 30
    prefix: ""
`, { REMOTE_KEY: 'k1' });
    expect(config.gateway).toMatchObject({ host: '127.0.0.1', port: 8000 });
    expect(config.servers.everything).toMatchObject({ transport: 'stdio', command: 'npx', enabled: true, timeout: 60, tags: ['demo'] });
    // A paused call waits no longer than a server's default timeout lets its upstream call run:
    // while it waits on a stdio server, other callers' mid-call requests there are not relayed.
    expect(config.gateway.limits.pausedCallSeconds).toBe(config.servers.everything!.timeout);
    expect(config.servers.remote).toMatchObject({ url: 'http://127.0.0.1:3001/mcp', headers: { 'X-API-Key': 'k1' }, timeout: 30, prefix: '' });
  });

  it('infers the transport from command or url', () => {
    const config = parse('servers:\n  a: { command: node }\n  b: { url: "http://localhost:1/mcp" }\n');
    expect(config.servers.a!.transport).toBe('stdio');
    expect(config.servers.b!.transport).toBe('streamable-http');
  });

  it('lists every problem by its path', () => {
    const problems = problemsOf(`
servers:
  github:
    transport: streamable-http
    url: not a url
  local:
    transport: stdio
    timeout: fast
  "bad name!":
    command: x
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'servers.github.url: expected a URL',
        'servers.local.command: is required',
        'servers.local.timeout: expected a number of seconds',
        expect.stringMatching(/^servers\.bad name!: server name may only contain/),
      ]),
    );
    expect(problems).toHaveLength(4);
  });

  it('rejects unknown keys, naming them', () => {
    expect(problemsOf('servers:\n  a:\n    command: x\n    comand: y\n')).toEqual(['servers.a: unknown key "comand" (did you mean "command"?)']);
    expect(problemsOf('server:\n  a: {}\n')).toEqual(['(top level): unknown key "server" (did you mean "servers"?)']);
  });

  it('rejects an unknown transport', () => {
    expect(problemsOf('servers:\n  a:\n    transport: carrier-pigeon\n    command: x\n')).toEqual([
      expect.stringMatching(/^servers\.a\.transport: expected one of "stdio"/),
    ]);
  });

  it('interpolates ${VAR} and ${VAR:-default}, and reports unset variables', () => {
    const config = parse('servers:\n  a:\n    command: "${BIN:-node}"\n    args: ["${ARG}", "$${LITERAL}"]\n', { ARG: 'x' });
    expect(config.servers.a).toMatchObject({ command: 'node', args: ['x', '${LITERAL}'] });
    expect(problemsOf('servers:\n  a:\n    command: node\n    env: { TOKEN: "${TOKEN}" }\n')).toEqual([
      'servers.a.env.TOKEN: environment variable TOKEN is not set',
    ]);
  });

  it('does not require variables of disabled servers', () => {
    const config = parse('servers:\n  a:\n    enabled: false\n    url: "${REMOTE_URL}"\n    transport: sse\n    headers: { K: "${K}" }\n', {
      REMOTE_URL: 'http://localhost:9/sse',
    });
    expect(config.servers.a!.enabled).toBe(false);
  });

  it('never lets a variable change the structure of the document', () => {
    const { value, problems } = interpolateEnv({ a: '${X}' }, { X: '\n  injected: true' });
    expect(value).toEqual({ a: '\n  injected: true' });
    expect(problems).toEqual([]);
  });

  it('accepts the mcpServers format of Claude Desktop and Cursor', () => {
    const config = parse(
      JSON.stringify({
        mcpServers: {
          fs: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'], env: { A: 'b' } },
          remote: { type: 'http', url: 'https://example.com/mcp', headers: { Authorization: 'Bearer x' } },
          legacy: { type: 'sse', url: 'https://example.com/sse', disabled: true },
        },
      }),
    );
    expect(config.servers.fs).toMatchObject({ transport: 'stdio', command: 'npx', env: { A: 'b' } });
    expect(config.servers.remote).toMatchObject({ transport: 'streamable-http', url: 'https://example.com/mcp' });
    expect(config.servers.legacy).toMatchObject({ transport: 'sse', enabled: false });
  });

  it('reports YAML syntax errors and missing files as config errors', async () => {
    expect(problemsOf('servers: [\n')[0]).toMatch(/^not valid YAML or JSON/);
    const dir = await mkdtemp(join(tmpdir(), 'conflux-config-'));
    await expect(loadConfigFile(join(dir, 'missing.yaml'), {})).rejects.toMatchObject({ problems: ['file not found'] });
    await writeFile(join(dir, 'bad.json'), '{"mcpServers": {,}}');
    await expect(loadConfigFile(join(dir, 'bad.json'), {})).rejects.toMatchObject({
      problems: [expect.stringMatching(/^not valid JSON/)],
    });
  });

  it('validates the shipped mcp-servers.yaml', async () => {
    const config = await loadConfigFile(join(import.meta.dirname, '../../mcp-servers.yaml'), {});
    expect(Object.keys(config.servers)).toEqual(['everything', 'memory', 'files', 'remote']);
  });
});

describe('an edited config file', () => {
  it('names the gateway settings that changed, which take effect only at a restart', () => {
    const running = parseConfig('gateway: { port: 8000 }\nservers: {}\n', { source: 'a', env: {} }).gateway;
    const edited = parseConfig('gateway: { port: 9000, rateLimit: { perPrincipal: 5 } }\nservers: {}\n', { source: 'b', env: {} }).gateway;
    expect(changedGatewaySettings(running, edited)).toEqual(['gateway.port', 'gateway.rateLimit']);
    expect(changedGatewaySettings(running, running)).toEqual([]);
  });
});

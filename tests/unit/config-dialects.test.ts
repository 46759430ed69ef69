import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parseConfigText, readConfigFile } from '../../src/config/load.js';

/** A project folder with `files` written in it (paths relative to it), and its path. */
async function project(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'conflux-dialect-'));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error;
}

const VSCODE_MCP_JSON = `{
  // Prompted for by VS Code; read from the environment by Conflux.
  "inputs": [
    { "type": "promptString", "id": "github-token", "description": "GitHub Personal Access Token", "password": true },
    { "type": "pickString", "id": "region", "description": "Region", "options": ["eu", "us"], "default": "eu" }
  ],
  "servers": {
    "gh": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/",
      "headers": { "Authorization": "Bearer \${input:github-token}", "X-Region": "\${input:region}" }, /* trailing comma below */
    },
    "legacy": { "type": "sse", "url": "https://example.com/sse" },
    "local": {
      "type": "stdio",
      "command": "node",
      "args": ["\${workspaceFolder}/server.js", "\${workspaceFolderBasename}"],
      "env": { "HOME_DIR": "\${userHome}", "PATH_VAR": "\${env:SOME_PATH}" },
      "dev": { "watch": "src/**/*.ts" }
    }
  }
}
`;

describe('VS Code .vscode/mcp.json', () => {
  it('is read as it is: comments, trailing commas, type, ${workspaceFolder}, ${env:X}, inputs from the environment', async () => {
    const root = await project({ '.vscode/mcp.json': VSCODE_MCP_JSON });
    const loaded = await readConfigFile(join(root, '.vscode/mcp.json'), { GITHUB_TOKEN: 'ghp_1', SOME_PATH: '/opt/bin', HOME: '/home/ada', PATH: process.env.PATH }, { commands: 'skip' });
    const { gh, legacy, local } = loaded.config.servers;
    expect(gh).toMatchObject({ transport: 'streamable-http', url: 'https://api.githubcopilot.com/mcp/', headers: { Authorization: 'Bearer ghp_1', 'X-Region': 'eu' } });
    expect(legacy).toMatchObject({ transport: 'sse', url: 'https://example.com/sse' });
    // The workspace of a file in <ws>/.vscode/ is <ws>.
    expect(local).toMatchObject({ transport: 'stdio', command: 'node', args: [`${root}/server.js`, root.split('/').pop()], env: { HOME_DIR: '/home/ada', PATH_VAR: '/opt/bin' } });
    expect(loaded.warnings).toEqual([
      `${join(root, '.vscode/mcp.json')}:19:7: servers.local.dev: ignored: VS Code's development mode (watch and debug) does not apply to a gateway`,
    ]);
  });

  it('takes an input from the variable named as the id is written, before its upper-case form', () => {
    const text = '{ "inputs": [{ "id": "api_key", "type": "promptString" }], "servers": { "s": { "type": "http", "url": "https://x/mcp", "headers": { "K": "${input:api_key}" } } } }';
    expect(parseConfig(text, { source: 'mcp.json', env: { api_key: 'as-written', API_KEY: 'upper' } }).servers.s).toMatchObject({ headers: { K: 'as-written' } });
    expect(parseConfig(text, { source: 'mcp.json', env: { API_KEY: 'upper' } }).servers.s).toMatchObject({ headers: { K: 'upper' } });
  });

  it('names the input, its prompt and the variable to set when an input has no value', async () => {
    const root = await project({ '.vscode/mcp.json': VSCODE_MCP_JSON });
    const file = join(root, '.vscode/mcp.json');
    const error = await rejection(readConfigFile(file, { SOME_PATH: '/opt/bin' }, { commands: 'skip' }));
    expect(error.problems).toEqual([
      'servers.gh.headers.Authorization: input "github-token" is prompted for in VS Code ("GitHub Personal Access Token"); Conflux cannot prompt: set the environment variable GITHUB_TOKEN',
    ]);
    // At the reference itself, inside its string.
    expect(error.message).toContain(`${file}:11:45: servers.gh.headers.Authorization: input "github-token"`);
  });

  it('says so when a reference names an input that is not declared', () => {
    expect(() => parseConfig('{ "servers": { "s": { "type": "stdio", "command": "x", "env": { "T": "${input:nope}" } } } }', { source: 'mcp.json', env: {} })).toThrow(
      'servers.s.env.T: input "nope" is not declared in "inputs"; Conflux cannot prompt: set the environment variable NOPE',
    );
  });
});

describe('Cursor .cursor/mcp.json', () => {
  it('understands ${env:X}, ${workspaceFolder}, envFile (under env) and disabled, and warns about the keys it ignores', async () => {
    const root = await project({
      '.cursor/mcp.json': JSON.stringify(
        {
          mcpServers: {
            db: {
              command: 'npx',
              args: ['-y', 'some-db-server', '${workspaceFolder}/data'],
              env: { DB_URL: '${env:DB_URL}', SHARED: 'from env' },
              envFile: '.env',
              autoApprove: ['query'],
              timout: 30,
            },
            off: { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer ${env:NOT_SET}' }, disabled: true },
            on: { url: 'https://example.com/mcp', disabled: false },
          },
        },
        null,
        2,
      ),
      '.env': 'SHARED=from file\nPASSWORD="pa$$word ${NOT_INTERPOLATED}"\n# a comment\nexport EXTRA=1\n',
    });
    const file = join(root, '.cursor/mcp.json');
    const loaded = await readConfigFile(file, { DB_URL: 'postgres://db' }, { commands: 'skip' });
    expect(loaded.config.servers.db).toMatchObject({
      transport: 'stdio',
      args: ['-y', 'some-db-server', `${root}/data`],
      // The file's values are taken as written; the entry's own env wins over them.
      env: { DB_URL: 'postgres://db', SHARED: 'from env', PASSWORD: 'pa$$word ${NOT_INTERPOLATED}', EXTRA: '1' },
    });
    // A disabled server needs none of its variables.
    expect(loaded.config.servers.off).toMatchObject({ enabled: false });
    expect(loaded.config.servers.on).toMatchObject({ enabled: true });
    expect(loaded.warnings).toEqual([
      `${file}:15:7: mcpServers.db.autoApprove: ignored: the client's approval list; the gateway's own is gateway.access (README.md#who-may-use-what)`,
      `${file}:18:7: mcpServers.db.timout: ignored: not a setting Conflux knows (did you mean "timeout"?)`,
    ]);
  });

  it('reports a missing envFile at its key, by its full path', async () => {
    const root = await project({ '.cursor/mcp.json': '{"mcpServers": {"a": {"command": "x", "envFile": "${workspaceFolder}/missing.env"}}}' });
    const error = await rejection(readConfigFile(join(root, '.cursor/mcp.json'), {}, { commands: 'skip' }));
    expect(error.problems).toEqual([`mcpServers.a.envFile: ${root}/missing.env does not exist`]);
    expect(error.message).toContain(`${join(root, '.cursor/mcp.json')}:1:50: mcpServers.a.envFile:`);
  });

  it('leaves Cursor\'s own OAuth client settings out, saying what Conflux uses instead', () => {
    const { config, warnings } = parseConfigText('{"mcpServers": {"r": {"url": "https://x/mcp", "auth": {"CLIENT_ID": "abc", "scopes": ["read"]}}}}', { source: 'mcp.json', env: {} });
    expect(config.servers.r).not.toHaveProperty('auth');
    expect(warnings).toEqual([expect.stringMatching(/^mcp\.json:1:47: mcpServers\.r\.auth: ignored: a client's OAuth settings; .*method: oauth2/)]);
  });
});

describe('Claude Desktop claude_desktop_config.json', () => {
  it('is read as before, its other settings reported as ignored', () => {
    const text = JSON.stringify({
      globalShortcut: 'Ctrl+Space',
      mcpServers: {
        fs: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'], env: { A: 'b' } },
        remote: { type: 'http', url: 'https://example.com/mcp' },
      },
    });
    const { config, warnings } = parseConfigText(text, { source: 'claude_desktop_config.json', env: {} });
    expect(config.servers.fs).toMatchObject({ transport: 'stdio', command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'], env: { A: 'b' } });
    expect(config.servers.remote).toMatchObject({ transport: 'streamable-http' });
    expect(warnings).toEqual(['claude_desktop_config.json:1:2: globalShortcut: ignored: not a setting Conflux reads from this file']);
  });

  it('reports a problem of an entry where the file writes it (mcpServers, type)', () => {
    expect(() => parseConfig('{"mcpServers": {"x": {"type": "pigeon", "command": "y"}}}', { source: 'c.json', env: {} })).toThrow(
      /c\.json:1:31: mcpServers\.x\.type: expected one of "stdio"/,
    );
  });
});

describe('relative paths', () => {
  it('resolve against the config file\'s folder, not the working directory', async () => {
    const root = await project({
      'conf/mcp-servers.yaml': 'servers:\n  a: { command: ./bin/tool, cwd: work }\n  b: { command: ../tools/run }\n  c: { command: node, args: [./relative-arg], cwd: /srv }\n  d: { command: bin/tool }\n',
    });
    const { servers } = (await readConfigFile(join(root, 'conf/mcp-servers.yaml'), {}, { commands: 'skip' })).config;
    // A ./command runs in its cwd, as a shell would run it there.
    expect(servers.a).toMatchObject({ command: join(root, 'conf/work/bin/tool'), cwd: join(root, 'conf/work') });
    expect(servers.b).toMatchObject({ command: join(root, 'tools/run') });
    expect(servers.b).not.toHaveProperty('cwd');
    // Arguments and commands not written ./ or ../ are left as they are.
    expect(servers.c).toMatchObject({ command: 'node', args: ['./relative-arg'], cwd: '/srv' });
    expect(servers.d).toMatchObject({ command: 'bin/tool' });
  });

  it('of a .vscode or .cursor file resolve against the project, where those clients run servers', async () => {
    const root = await project({ '.cursor/mcp.json': '{"mcpServers": {"a": {"command": "./scripts/server.sh", "cwd": "."}}}' });
    const { servers } = (await readConfigFile(join(root, '.cursor/mcp.json'), {}, { commands: 'skip' })).config;
    expect(servers.a).toMatchObject({ command: join(root, 'scripts/server.sh'), cwd: root });
  });

  it('are left as written in text that is not read from a file', () => {
    expect(parseConfig('servers:\n  a: { command: ./x, cwd: sub }\n', { source: 'text', env: {} }).servers.a).toMatchObject({ command: './x', cwd: 'sub' });
  });

  it('make a config that starts from any working directory', async () => {
    const root = await project({ 'mcp-servers.yaml': 'servers:\n  tool: { command: ./tool.sh }\n', 'tool.sh': '#!/bin/sh\n' });
    await chmod(join(root, 'tool.sh'), 0o755);
    const loaded = await readConfigFile(join(root, 'mcp-servers.yaml'), { PATH: '' }, { commands: 'error' });
    expect(loaded.config.servers.tool).toMatchObject({ command: join(root, 'tool.sh') });
    expect(loaded.warnings).toEqual([]);
  });
});

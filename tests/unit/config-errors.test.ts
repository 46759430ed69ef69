import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closestName } from '../../src/config/did-you-mean.js';
import { ConfigError, parseConfig, readConfigFile } from '../../src/config/load.js';

function rejected(text: string, env: Record<string, string> = {}, source = 'mcp-servers.yaml'): ConfigError {
  try {
    parseConfig(text, { source, env });
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

/** Each problem as `line:column: text`. */
const located = (error: ConfigError) => error.located.map((p) => `${p.position?.line}:${p.position?.column}: ${p.text}`);

async function configFile(text: string, name = 'mcp-servers.yaml'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-errors-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('unknown keys', () => {
  it('suggest the key that was meant, and come first', () => {
    const error = rejected(['gateway:', '  prt: 9000', 'servers:', '  a:', '    comand: node', '  b:', '    url: https://x/mcp', '    auth: { method: bearer, credntial: t }', '    colour: red', ''].join('\n'));
    expect(located(error)).toEqual([
      '2:3: gateway: unknown key "prt" (did you mean "port"?)',
      '5:5: servers.a: unknown key "comand" (did you mean "command"?)',
      '8:29: servers.b.auth: unknown key "credntial" (did you mean "credential"?)',
      '9:5: servers.b: unknown key "colour"',
      // What the misspelt keys left out, after them, at the entry that lacks it.
      '4:3: servers.a.transport: expected one of "stdio", "streamable-http", "sse" (or give `command`, `url` or `urls`)',
      '8:5: servers.b.auth.credential: expected a credential reference (env://VAR, file:///path, or a value)',
    ]);
  });

  it('are matched whatever their case, and only when close', () => {
    expect(closestName('envfile', ['env', 'envFile'])).toBe('envFile');
    expect(closestName('path', ['uri', 'name'])).toBeUndefined();
    expect(closestName('tag', ['tags', 'timeout'])).toBe('tags');
    // Two neighbours swapped is one slip, not two.
    expect(closestName('nmae', ['uri', 'name'])).toBe('name');
  });
});

describe('every problem', () => {
  it('carries file:line:column in the message', async () => {
    const path = await configFile('servers:\n  github:\n    url: not a url\n  local:\n    transport: stdio\n    timeout: fast\n');
    const error = await readConfigFile(path, {}).then(
      () => undefined,
      (e: unknown) => e as ConfigError,
    );
    expect(error?.message.split('\n')).toEqual([
      `invalid configuration in ${path}:`,
      `  - ${path}:3:10: servers.github.url: expected a URL`,
      // A required key left out: the entry that lacks it.
      `  - ${path}:4:3: servers.local.command: is required`,
      `  - ${path}:6:14: servers.local.timeout: expected a number of seconds`,
    ]);
  });

  it('of a JSON file has its line and column too', () => {
    const text = '{\n  "mcpServers": {\n    "x": { "command": "node", "timeout": "slow" }\n  }\n}\n';
    expect(located(rejected(text, {}, 'mcp.json'))).toEqual(['3:42: mcpServers.x.timeout: expected a number of seconds']);
  });

  it('of a server name points at the name', () => {
    expect(located(rejected('servers:\n  ok: { command: x }\n  "bad name!": { command: x }\n'))).toEqual([
      '3:3: servers.bad name!: server name may only contain letters, digits, "_" and "-"',
    ]);
  });
});

describe('syntax errors', () => {
  it('are all reported, each where it is', () => {
    const error = rejected('servers:\n  a: {command: x]\n  b:\n    - x\n    y: 1\n  c: @x\n');
    expect(located(error)).toEqual([
      '2:17: not valid YAML or JSON: Flow map in block collection must be sufficiently indented and end with a }',
      '5:1: not valid YAML or JSON: All mapping items must start at the same column',
      '6:6: not valid YAML or JSON: Plain value cannot start with reserved character @',
    ]);
  });

  it('of a JSON file are JSON errors with positions, and a duplicate key is one', async () => {
    const path = await configFile('{\n  "mcpServers": {\n    "a": { "command": "x" },,\n    "a": { "command": "y" }\n  }\n}\n', 'mcp.json');
    const error = await readConfigFile(path, {}).then(
      () => undefined,
      (e: unknown) => e as ConfigError,
    );
    expect(error?.located).toEqual([
      { text: expect.stringMatching(/^not valid JSON: Unexpected , in flow map/), position: { line: 3, column: 29 } },
      { text: 'not valid JSON: Map keys must be unique', position: { line: 4, column: 5 } },
    ]);
  });
});

describe('malformed ${...} references', () => {
  it('are rejected, each at its place in its string, instead of being sent as written', () => {
    const error = rejected(
      [
        'servers:',
        '  r:',
        '    url: https://x/mcp',
        '    headers:',
        '      Authorization: "Bearer ${TOKEN"',
        '      A: "${}"',
        '      B: "x ${ TOKEN }"',
        '      C: "${TOKEN:default}"',
        '      D: "${config:github.token}"',
        '      E: "${env:}"',
        '',
      ].join('\n'),
      { TOKEN: 't' },
    );
    expect(located(error)).toEqual([
      '5:30: servers.r.headers.Authorization: "${TOKEN" is not closed with "}" (write $${ for a literal "${")',
      '6:11: servers.r.headers.A: "${}" names no variable (write $${ for a literal "${")',
      '7:13: servers.r.headers.B: "${ TOKEN }": no spaces inside ${...}; write ${TOKEN}',
      '8:11: servers.r.headers.C: "${TOKEN:default}": a default is written ${TOKEN:-default}',
      '9:11: servers.r.headers.D: "${config:github.token}": "config:" references are not supported (use ${VAR}, ${env:VAR} or ${input:ID})',
      '10:11: servers.r.headers.E: "${env:}": expected ${env:NAME}, NAME made of letters, digits and "_"',
    ]);
  });

  it('are rejected in a disabled server too, where only unset variables are forgiven', () => {
    const text = 'servers:\n  off:\n    enabled: false\n    url: https://x/mcp\n    headers: { A: "${UNSET}", B: "${BROKEN" }\n';
    expect(rejected(text).problems).toEqual(['servers.off.headers.B: "${BROKEN" is not closed with "}" (write $${ for a literal "${")']);
  });

  it('leave $$, a lone $ and per-user placeholders alone, and name the user fields', () => {
    const config = parseConfig('servers:\n  s:\n    command: x\n    shared: false\n    args: ["$${LITERAL}", "cost: $5", "${user.email}"]\n', { source: 't', env: {} });
    expect(config.servers.s).toMatchObject({ args: ['${LITERAL}', 'cost: $5', '${user.email}'] });
    expect(rejected('servers:\n  s:\n    command: x\n    args: ["${user.name}"]\n').problems).toEqual([
      'servers.s.args[0]: "${user.name}": a user placeholder is one of ${user.id}, ${user.sub}, ${user.email}, ${user.groups}, ${user.token}',
    ]);
  });
});

describe('stdio commands and folders', () => {
  it('that do not exist fail validate, each at its key', async () => {
    const path = await configFile(['servers:', '  gone: { command: no-such-command-conflux }', '  local: { command: ./missing.sh }', '  elsewhere: { command: node, cwd: ./nowhere }', '  off: { command: also-missing, enabled: false }', '  ok: { command: node }', ''].join('\n'));
    const dir = join(path, '..');
    const error = await readConfigFile(path, { PATH: process.env.PATH }, { commands: 'error' }).then(
      () => undefined,
      (e: unknown) => e as ConfigError,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(located(error!)).toEqual([
      '2:20: servers.gone.command: "no-such-command-conflux" is not found on PATH',
      `3:21: servers.local.command: ${dir}/missing.sh does not exist`,
      `4:36: servers.elsewhere.cwd: folder ${dir}/nowhere does not exist`,
    ]);
  });

  it('are warnings for the commands that start servers', async () => {
    const path = await configFile('servers:\n  gone: { command: no-such-command-conflux }\n  ok: { command: node }\n');
    const loaded = await readConfigFile(path, { PATH: process.env.PATH });
    expect(Object.keys(loaded.config.servers)).toEqual(['gone', 'ok']);
    expect(loaded.warnings).toEqual([`${path}:2:20: servers.gone.command: "no-such-command-conflux" is not found on PATH`]);
  });

  it('are looked up on the server\'s own PATH when it sets one, and must be executable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-bin-'));
    await writeFile(join(dir, 'tool'), '#!/bin/sh\n');
    await chmod(join(dir, 'tool'), 0o755);
    await writeFile(join(dir, 'plain'), 'not a program\n');
    const path = await configFile(`servers:\n  a: { command: tool, env: { PATH: "${dir}" } }\n  b: { command: "${dir}/plain" }\n  c: { command: tool }\n`);
    const loaded = await readConfigFile(path, { PATH: '/nonexistent' });
    expect(loaded.warnings).toEqual([
      `${path}:3:17: servers.b.command: ${dir}/plain is not executable (chmod +x)`,
      `${path}:4:17: servers.c.command: "tool" is not found on PATH`,
    ]);
  });
});

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV_FILE_OPTION_REFUSED } from '../../src/config/dotenv.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { ROOT, STDIO_FIXTURE } from '../helpers/gateway.js';
import { runCli as runCliAtRoot, runCliIn, type CliResult } from '../helpers/run-cli.js';

/** Each run gets its own embedded database folder. */
async function runCli(args: string[], env: Record<string, string> = {}) {
  return runCliAtRoot(args, { CONFLUX_DATA_DIR: await mkdtemp(join(tmpdir(), 'conflux-data-')), ...env });
}

/**
 * The CLI run from `cwd` with PATH as `npx conflux-gateway` sets it: the bin folder of the
 * gateway's dependencies first (for a checkout, its node_modules/.bin).
 */
async function runCliFrom(cwd: string, args: string[]): Promise<CliResult> {
  return runCliIn(cwd, args, {
    PATH: `${join(ROOT, 'node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}`,
    HOME: cwd,
    LOG_LEVEL: 'warn',
    CONFLUX_DATA_DIR: await mkdtemp(join(tmpdir(), 'conflux-data-')),
  });
}

async function writeConfig(path: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-cli-config-'));
  await mkdir(join(dir, path, '..'), { recursive: true });
  await writeFile(join(dir, path), text);
  return join(dir, path);
}

describe('the CLI reading a config', { timeout: 120_000 }, () => {
  it('validate: refuses a stdio command that does not exist, pointing at it', async () => {
    const config = await writeConfig('mcp-servers.yaml', 'servers:\n  gone:\n    command: no-such-command-conflux\n  ok: { command: node }\n');
    const result = await runCli(['validate', '-c', config]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${config}:3:14: servers.gone.command: "no-such-command-conflux" is not found on PATH`);
  });

  it('validate: accepts a VS Code mcp.json and prints what it ignores as warnings', async () => {
    const config = await writeConfig(
      '.vscode/mcp.json',
      '{\n  // from VS Code\n  "inputs": [{ "type": "promptString", "id": "token", "description": "API token" }],\n  "servers": {\n    "api": { "type": "http", "url": "https://example.com/mcp", "headers": { "K": "${input:token}" }, "gallery": true }\n  }\n}\n',
    );
    const missing = await runCli(['validate', '-c', config]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${config}:5:83: servers.api.headers.K: input "token" is prompted for in VS Code ("API token"); Conflux cannot prompt: set the environment variable TOKEN`);

    const result = await runCli(['validate', '-c', config], { TOKEN: 'secret' });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('valid (1 servers)');
    expect(result.stderr).toContain(`warning: ${config}:5:102: servers.api.gallery: ignored: where VS Code installed the server from`);
  });

  it('tools: warns about a command that does not exist and serves the other servers', async () => {
    const config = await writeConfig(
      'mcp-servers.yaml',
      `servers:\n  gone: { command: ./not-here.sh }\n  alpha:\n    command: ${process.execPath}\n    args: ${JSON.stringify([...nodeArgs(STDIO_FIXTURE), 'alpha'])}\n    cwd: ${ROOT}\n`,
    );
    const result = await runCli(['tools', '-c', config]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`warning: ${config}:2:20: servers.gone.command: ${join(config, '..', 'not-here.sh')} does not exist`);
    expect(result.stdout).toContain('alpha__echo');
  });
});

describe('the CLI in a folder without a config', { timeout: 120_000 }, () => {
  it('runs the sample shipped with the package, its demo folder found beside the sample rather than here', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'conflux-empty-'));
    const notice = `no mcp-servers.yaml in this folder: using the sample ${join(ROOT, 'mcp-servers.yaml')}\n`;

    // validate checks the file that is there: in a folder without one it fails (a CI step run in the wrong place).
    const validated = await runCliFrom(empty, ['validate']);
    expect(validated).toEqual({ code: 1, stdout: '', stderr: 'invalid configuration in mcp-servers.yaml:\n  - file not found\n' });

    const allowed = await runCliFrom(empty, ['call', 'files__list_allowed_directories']);
    expect(allowed.code).toBe(0);
    // Progress lines (the embedded database's first start) follow; no warning or error.
    expect(allowed.stderr.startsWith(notice)).toBe(true);
    expect(allowed.stderr).not.toMatch(/warning|error|ENOENT/i);
    const content = (JSON.parse(allowed.stdout) as { content: { text: string }[] }).content;
    expect(content.map((c) => c.text).join('')).toBe(`Allowed directories:\n${join(ROOT, 'demo')}`);
  });
});

describe('the --dotenv option', { timeout: 60_000 }, () => {
  it('is the name for a .env file; --env-file, which Node 20 reads itself, is refused with the name to use', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-dotenv-'));
    const file = join(dir, 'settings.env');
    await writeFile(file, 'CONFLUX_PORT=abc\n');
    expect(await runCli(['validate', '--dotenv', file])).toMatchObject({ code: 2, stderr: 'CONFLUX_PORT must be a port number 1-65535 (got "abc")\n' });

    // Node 20 stops on a missing --env-file before the CLI runs; an existing one reaches it.
    const refused = await runCli(['validate', '--env-file', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.split('\n')[0]).toBe(ENV_FILE_OPTION_REFUSED);
    expect(refused.stderr).toContain('--dotenv FILE');
  });
});

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, STDIO_FIXTURE } from '../helpers/gateway.js';
import { runCli as runCliIn } from '../helpers/run-cli.js';

/** Each run gets its own embedded database folder. */
async function runCli(args: string[], env: Record<string, string> = {}) {
  return runCliIn(args, { CONFLUX_DATA_DIR: await mkdtemp(join(tmpdir(), 'conflux-data-')), ...env });
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
      `servers:\n  gone: { command: ./not-here.sh }\n  alpha:\n    command: ${process.execPath}\n    args: ["--import", "tsx", "${STDIO_FIXTURE}", "alpha"]\n    cwd: ${ROOT}\n`,
    );
    const result = await runCli(['tools', '-c', config]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`warning: ${config}:2:20: servers.gone.command: ${join(config, '..', 'not-here.sh')} does not exist`);
    expect(result.stdout).toContain('alpha__echo');
  });
});

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { ROOT, startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { scaled } from '../helpers/load-scale.js';

const run = promisify(execFile);
const INSPECTOR = join(ROOT, 'node_modules/.bin/mcp-inspector');

/** The official MCP Inspector CLI, as a user would run it against the gateway. */
async function inspector(url: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const home = await mkdtemp(join(tmpdir(), 'inspector-'));
  const env = { ...process.env, MCP_CATALOG_PATH: join(home, 'catalog.json') };
  try {
    const { stdout } = await run(INSPECTOR, ['--cli', url, '--transport', 'http', ...args], { env, timeout: scaled(30_000) });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

describe('MCP Inspector CLI against the gateway', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha'), beta: stdioFixture('beta') }));
  });
  afterAll(async () => gateway?.stop());

  it('lists the merged tools', async () => {
    const { code, stdout } = await inspector(gateway.url, ['--method', 'tools/list']);
    expect(code).toBe(0);
    const names = (JSON.parse(stdout) as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'beta__echo', 'alpha__add', 'beta__add']));
  });

  it('calls a tool with arguments', async () => {
    const { code, stdout } = await inspector(gateway.url, ['--method', 'tools/call', '--tool-name', 'beta__add', '--tool-arg', 'a=2', '--tool-arg', 'b=3']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ content: [{ type: 'text', text: '5' }], structuredContent: { sum: 5 } });
  });

  it('reports an unknown tool as a tool error (exit 5)', async () => {
    const { code } = await inspector(gateway.url, ['--method', 'tools/call', '--tool-name', 'gamma__add']);
    expect(code).toBe(5);
  });
});

describe('MCP Inspector CLI against a gateway that requires a token', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway(
      testConfig({ alpha: stdioFixture('alpha') }, { auth: { jwt: { secret: JWT_SECRET } }, access: { grants: [{ user: 'ops@example.com', servers: ['alpha'] }] } }),
    );
  });
  afterAll(async () => gateway?.stop());

  it('lists tools with --header "Authorization: Bearer ...", and fails without it', async () => {
    const token = await hs256Token({ sub: 'ops', email: 'ops@example.com' });
    const { code, stdout } = await inspector(gateway.url, ['--header', `Authorization: Bearer ${token}`, '--method', 'tools/list']);
    expect(code).toBe(0);
    const names = (JSON.parse(stdout) as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(names).toContain('alpha__echo');
    const refused = await inspector(gateway.url, ['--method', 'tools/list']);
    expect(refused.code).not.toBe(0);
  });
});

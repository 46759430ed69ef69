import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { access, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { freshPostgres, postgresAvailable } from '../helpers/databases.js';
import { isAlive, ROOT, STDIO_FIXTURE, waitFor } from '../helpers/gateway.js';

const CLI = join(ROOT, 'src/cli.ts');

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => Finished; done: Promise<Finished> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    // each gateway gets its own embedded database
    env: { ...process.env, LOG_LEVEL: 'warn', CONFLUX_DATA_DIR: mkdtempSync(join(tmpdir(), 'conflux-data-')), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  const output = () => ({ code: child.exitCode, stdout, stderr });
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, output, done };
}

const runCli = (args: string[], env?: Record<string, string>) => startCli(args, env).done;

async function writeConfig(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-cli-'));
  const path = join(dir, 'mcp-servers.yaml');
  await writeFile(path, text);
  return path;
}

const fixtureServer = (label: string) =>
  `  ${label}:\n    command: ${process.execPath}\n    args: ["--import", "tsx", "${STDIO_FIXTURE}", "${label}"]\n    cwd: ${ROOT}\n`;

// Each test runs CLI processes that start upstreams and open an embedded database: seconds on a
// quiet machine, far more on a busy one.
describe('the conflux CLI', { timeout: 240_000 }, () => {
  const running: ChildProcess[] = [];
  afterEach(() => {
    for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('validate: accepts a good file and lists every problem of a bad one', async () => {
    const good = await runCli(['validate', '--config', join(ROOT, 'mcp-servers.yaml')]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/valid \(4 servers\)/);

    const bad = await writeConfig('servers:\n  github:\n    url: nope\n  x:\n    command: node\n    colour: red\n');
    const result = await runCli(['validate', '-c', bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('servers.github.url: expected a URL');
    expect(result.stderr).toContain('servers.x: unknown key "colour"');
    expect(result.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it('tools and call: connect, list the merged tools and call one', async () => {
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}${fixtureServer('beta')}`);
    const tools = await runCli(['tools', '-c', config]);
    expect(tools.code).toBe(0);
    const names = tools.stdout.trim().split('\n').map((line) => line.split('\t')[0]);
    expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'beta__echo', 'alpha__add', 'beta__crash']));

    const call = await runCli(['call', 'beta__add', '-c', config, '--args', '{"a": 20, "b": 22}']);
    expect(call.code).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({ structuredContent: { sum: 42 } });

    const unknown = await runCli(['call', 'gamma__add', '-c', config]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Unknown tool: "gamma__add"');

    const badArgs = await runCli(['call', 'beta__add', '-c', config, '--args', '[1,2']);
    expect(badArgs.code).toBe(2);
    expect(badArgs.stderr).toMatch(/--args is not valid JSON/);
  });

  it('call: the call is written to the audit trail of the database the CLI uses', async () => {
    if (!(await postgresAvailable())) return;
    const store = await freshPostgres();
    try {
      const config = await writeConfig(`servers:\n${fixtureServer('alpha')}`);
      const call = await runCli(['call', 'alpha__echo', '-c', config, '--args', '{"text": "audited", "password": "hunter2"}'], { DATABASE_URL: store.url! });
      expect(call.code).toBe(0);
      const sql = postgres(store.url!, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select channel, target, status, arguments from audit_events`;
        expect(rows.map((r) => ({ ...r }))).toEqual([{ channel: 'cli', target: 'alpha__echo', status: 'ok', arguments: { text: 'audited', password: '[redacted]' } }]);
      } finally {
        await sql.end({ timeout: 1 });
      }
    } finally {
      await store.dispose();
    }
  });

  it.each([['SIGTERM'], ['SIGINT']] as const)('serve: %s stops the gateway with exit 0 and no child left', async (signal) => {
    const config = await writeConfig(`servers:\n${fixtureServer('one')}${fixtureServer('two')}`);
    const { child, done } = startCli(['serve', '-c', config, '--port', '0'], { LOG_LEVEL: 'info' });
    running.push(child);
    const pids = await upstreamPids(child, 2);
    child.kill(signal);
    const finished = await done;
    expect(finished.code).toBe(0);
    await waitFor(() => !pids.some(isAlive), 5000, 'children to exit');
  });

  it('serve: a gateway killed with SIGKILL takes its stdio children with it', async () => {
    const config = await writeConfig(`servers:\n${fixtureServer('one')}`);
    const { child, done } = startCli(['serve', '-c', config, '--port', '0'], { LOG_LEVEL: 'info' });
    running.push(child);
    const pids = await upstreamPids(child, 1);
    child.kill('SIGKILL');
    await done;
    await waitFor(() => !pids.some(isAlive), 5000, 'children to die with the gateway');
  });

  it('serve: refuses a bad port', async () => {
    const result = await runCli(['serve', '-c', join(ROOT, 'mcp-servers.yaml'), '--port', 'eighty']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid port "eighty"');
  });
});

describe('the conflux CLI on an embedded database a gateway holds', () => {
  // One folder for the whole block: creating a PGlite database takes seconds.
  let dataDir: string;
  let env: Record<string, string>;
  let noAuth: string;
  let withKeys: string;
  const running: ChildProcess[] = [];

  // Each test starts gateways and CLI processes that open PGlite: seconds each, more on a busy machine.
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'conflux-data-'));
    env = { CONFLUX_DATA_DIR: dataDir };
    noAuth = await writeConfig(`gateway:\n  auth: none\nservers:\n${fixtureServer('alpha')}`);
    withKeys = await writeConfig('gateway:\n  auth:\n    apiKeys: true\nservers: {}\n');
  });
  afterEach(() => {
    for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });
  afterAll(() => {
    for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });

  /** A gateway on the shared folder, once it listens: its pid, base URL and a graceful stop. */
  async function serveOn(config: string) {
    const gateway = startCli(['serve', '-c', config, '--port', '0'], { ...env, LOG_LEVEL: 'info' });
    running.push(gateway.child);
    let url: string | undefined;
    await waitFor(() => {
      url = /"url":"(http:[^"]+)\/mcp"/.exec(gateway.output().stderr)?.[1];
      return url !== undefined || gateway.child.exitCode !== null;
    }, 120_000, 'the gateway to listen');
    if (!url) throw new Error(`the gateway did not start: ${gateway.output().stderr}`);
    return {
      pid: gateway.child.pid!,
      base: url,
      stop: async () => {
        gateway.child.kill('SIGTERM');
        expect((await gateway.done).code).toBe(0);
      },
    };
  }
  const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra });
  const me = (base: string, key: string) => fetch(`${base}/api/v1/me`, { headers: { 'x-api-key': key } });
  const lockFile = () => join(dataDir, 'pgdata.lock');

  it('auth none: keys and access go through the gateway, which sees them at once; a second gateway and migrate are refused', async () => {
    const gateway = await serveOn(noAuth);
    try {
      const created = await cli(['keys', 'create', 'alice', '--group', 'dev']);
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(/^cfx_\w+_[\w-]+\n$/);
      expect(created.stderr).toContain(`through the gateway at ${gateway.base}, process ${gateway.pid}`);
      const listed = (await (await fetch(`${gateway.base}/api/v1/api-keys`)).json()) as { apiKeys: { name: string; groups: string[] }[] };
      expect(listed.apiKeys).toEqual([expect.objectContaining({ name: 'alice', groups: ['dev'] })]);

      const granted = await cli(['access', 'grant', '--group', 'dev', '--server', '*', '--level', 'read']);
      expect(granted.code).toBe(0);
      const grants = (await (await fetch(`${gateway.base}/api/v1/access/grants`)).json()) as { grants: { subject: string; level: string }[] };
      expect(grants.grants).toEqual([expect.objectContaining({ subject: 'dev', level: 'read', server: '*' })]);
      const list = await cli(['access', 'list']);
      expect(list.stdout).toMatch(/^grant\t\d+\tgroup:dev\t\*\tread$/m);

      // A call made with the CLI meanwhile is made, and audited, by the gateway.
      const called = await cli(['call', 'alpha__echo', '-c', noAuth, '--args', '{"text": "via the cli"}']);
      expect(called.code).toBe(0);
      expect(called.stderr).toContain(`through the gateway at ${gateway.base}`);
      expect(JSON.parse(called.stdout)).toMatchObject({ content: [{ type: 'text', text: 'alpha: via the cli' }] });
      await waitFor(async () => {
        const audit = (await (await fetch(`${gateway.base}/api/v1/audit?tool=alpha__echo`)).json()) as { events: { arguments: unknown }[] };
        return audit.events.some((e) => JSON.stringify(e.arguments) === '{"text":"via the cli"}');
      }, 30_000, 'the CLI call in the audit trail');
      const missing = await cli(['access', 'revoke', '999']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('no stored grant with id 999');

      const second = await runCli(['serve', '-c', noAuth, '--port', '0'], env);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain(`The data folder ${join(dataDir, 'pgdata')} is in use by process ${gateway.pid}`);
      expect(second.stderr).toContain(`the Conflux gateway serving ${gateway.base}`);
      const migrate = await cli(['migrate']);
      expect(migrate.code).toBe(1);
      expect(migrate.stderr).toContain(`is in use by process ${gateway.pid}`);
      // the first gateway still serves, and still holds the folder
      expect((await fetch(`${gateway.base}/api/v1/api-keys`)).status).toBe(200);
      expect(JSON.parse(await readFile(lockFile(), 'utf8'))).toMatchObject({ pid: gateway.pid, url: gateway.base });
    } finally {
      await gateway.stop();
    }
    await expect(access(lockFile())).rejects.toThrow(/ENOENT/);
  }, 240_000);

  it('auth on: an admin credential is needed; keys created and revoked through the CLI apply at once and outlive the gateway', async () => {
    // Nobody holds the folder: the CLI opens it itself.
    const bootstrap = await cli(['keys', 'create', 'root', '--group', 'MCP-Admin']);
    expect(bootstrap.code).toBe(0);
    expect(bootstrap.stderr).not.toContain('through the gateway');
    const root = bootstrap.stdout.trim();

    let gateway = await serveOn(withKeys);
    let bob: string;
    try {
      const refused = await cli(['keys', 'list']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`the gateway at ${gateway.base} (process ${gateway.pid}) holds the embedded database in ${join(dataDir, 'pgdata')} and requires authentication`);
      expect(refused.stderr).toContain('CONFLUX_ADMIN_TOKEN');
      const wrong = await cli(['keys', 'list'], { CONFLUX_ADMIN_TOKEN: 'cfx_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain('refused the credential: unknown API key');

      const created = await cli(['keys', 'create', 'bob'], { CONFLUX_ADMIN_TOKEN: root });
      expect(created.code).toBe(0);
      bob = created.stdout.trim();
      const asBob = await me(gateway.base, bob);
      expect(asBob.status).toBe(200);
      expect(await asBob.json()).toMatchObject({ principal: 'key:bob', admin: false });
      const notAdmin = await cli(['keys', 'list'], { CONFLUX_ADMIN_TOKEN: bob });
      expect(notAdmin.code).toBe(1);
      expect(notAdmin.stderr).toContain('needs the admin role');

      const revoked = await cli(['keys', 'revoke', 'bob', '--admin-token', root]);
      expect(revoked.code).toBe(0);
      expect(revoked.stdout).toMatch(/^revoked bob /);
      expect((await me(gateway.base, bob)).status).toBe(401);
    } finally {
      await gateway.stop();
    }

    gateway = await serveOn(withKeys);
    try {
      const afterRestart = await me(gateway.base, bob);
      expect(afterRestart.status).toBe(401);
      expect(await afterRestart.json()).toMatchObject({ error: { message: 'API key revoked' } });
      expect((await me(gateway.base, root)).status).toBe(200);
      const list = await cli(['keys', 'list', '--json'], { CONFLUX_ADMIN_TOKEN: root });
      expect(list.code).toBe(0);
      const keys = JSON.parse(list.stdout) as { name: string; revokedAt: string | null }[];
      expect(keys.find((k) => k.name === 'bob')?.revokedAt).toEqual(expect.any(String));
      expect(keys.find((k) => k.name === 'root')?.revokedAt).toBeNull();
    } finally {
      await gateway.stop();
    }
  }, 360_000);

  it('takes over the lock of a process that is gone', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    const [code] = await once(gone, 'exit');
    expect(code).toBe(0);
    const stale = { pid: gone.pid!, startedAt: Date.now() - 5000, hostname: hostname(), acquiredAt: new Date().toISOString(), url: 'http://127.0.0.1:9', token: 'left-behind' };
    await writeFile(lockFile(), JSON.stringify(stale));
    const list = await cli(['keys', 'list']);
    expect(list.code).toBe(0);
    expect(list.stderr).not.toContain('through the gateway');
    expect(list.stdout).toMatch(/\troot\t/);
    await expect(access(lockFile())).rejects.toThrow(/ENOENT/);
  }, 120_000);
});

/** Reads the listening URL from the log, then the upstream pids from /servers once they are ready. */
async function upstreamPids(child: ChildProcess, count: number): Promise<number[]> {
  let log = '';
  child.stderr!.on('data', (c) => (log += c));
  let url: string | undefined;
  await waitFor(() => {
    url = /"url":"(http:[^"]+)"/.exec(log)?.[1];
    return url !== undefined;
  }, 120_000, 'the gateway to listen'); // creating its embedded database takes long on a busy machine
  const base = url!.replace(/\/mcp$/, '');
  let pids: number[] = [];
  await waitFor(async () => {
    const body = (await (await fetch(`${base}/servers`)).json()) as { servers: { state: string; pid?: number }[] };
    pids = body.servers.filter((s) => s.state === 'ready' && s.pid).map((s) => s.pid!);
    return pids.length === count;
  }, 60_000, 'the upstreams to be ready');
  expect(pids.every(isAlive)).toBe(true);
  return pids;
}

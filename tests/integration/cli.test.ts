import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync } from 'node:fs';
import { access, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { commandUsage, globalUsage } from '../../src/cli-help.js';
import { GATEWAY_VERSION } from '../../src/version.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { freshPostgres, postgresAvailable, TEST_DATABASE_URL, type TestDatabase } from '../helpers/databases.js';
import { freePort, isAlive, ROOT, STDIO_FIXTURE, waitFor } from '../helpers/gateway.js';

const CLI = join(ROOT, 'src/cli.ts');

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The database of the runs that name none (no `DATABASE_URL` or `CONFLUX_DATA_DIR` in `env`):
 * where PostgreSQL is up, one of its databases for the whole file, since creating an embedded
 * one costs each process seconds of CPU and these runs are not about it (the embedded database
 * has tests of its own below); else a new embedded folder for each run.
 */
let incidental: TestDatabase | undefined;
beforeAll(async () => {
  if (await postgresAvailable()) incidental = await freshPostgres();
});
afterAll(async () => {
  await incidental?.dispose();
});

function databaseOf(env: Record<string, string>): Record<string, string> {
  if (env.DATABASE_URL !== undefined || env.CONFLUX_DATA_DIR !== undefined) return {};
  return incidental ? { DATABASE_URL: incidental.url! } : { CONFLUX_DATA_DIR: mkdtempSync(join(tmpdir(), 'conflux-data-')) };
}

/**
 * The CLI, run from the checkout with this process's environment and `env` over it, or with
 * `only` from `only.cwd` with nothing of this process's environment but PATH and `env`.
 */
function startCli(args: string[], env: Record<string, string> = {}, only?: { cwd: string }): { child: ChildProcess; output: () => Finished; done: Promise<Finished> } {
  const child = spawn(process.execPath, [...nodeArgs(CLI), ...args], {
    cwd: only?.cwd ?? ROOT,
    env: only ? { PATH: process.env.PATH!, ...env } : { ...process.env, LOG_LEVEL: 'warn', ...databaseOf(env), ...env },
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
  `  ${label}:\n    command: ${process.execPath}\n    args: ${JSON.stringify([...nodeArgs(STDIO_FIXTURE), label])}\n    cwd: ${ROOT}\n`;

// Each test runs CLI processes that start upstreams and open a database: seconds on a quiet
// machine, far more on a busy one.
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
  }, 120_000, 'the gateway to listen'); // opening its database takes long on a busy machine
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

/** The JSON log lines of a process's stderr (other lines, such as config warnings, left out). */
function logLines(stderr: string): { level: number; msg: string; [field: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string });
}

/** A loopback port some other program holds, until `close`. */
async function takenPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

const runCliIn = (cwd: string, args: string[], env: Record<string, string>) => startCli(args, env, { cwd }).done;

const hasScript = spawnSync('script', ['--version']).status === 0;
const NO_STACK = /^\s+at /m;

describe('the conflux CLI says what it does, and why it cannot', { timeout: 240_000 }, () => {
  const running: ChildProcess[] = [];
  const held: Server[] = [];
  afterEach(async () => {
    for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all(held.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });
  const holdPort = async () => {
    const taken = await takenPort();
    held.push(taken.server);
    return taken.port;
  };

  it('--version, per-command --help and unknown commands', async () => {
    expect(await runCli(['--version'])).toMatchObject({ code: 0, stdout: `conflux ${GATEWAY_VERSION}\n` });
    const keys = await runCli(['keys', '--help']);
    expect(keys).toMatchObject({ code: 0, stdout: commandUsage('keys') });
    expect(keys.stdout).not.toContain('Commands:');
    expect(await runCli(['help', 'access'])).toMatchObject({ code: 0, stdout: commandUsage('access') });
    expect(await runCli(['--help'])).toMatchObject({ code: 0, stdout: globalUsage() });
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^unknown command "frobnicate"\n/);
  });

  it('a bad LOG_LEVEL, CONFLUX_PORT or --log-format is one line, without a stack', async () => {
    expect(await runCli(['validate'], { LOG_LEVEL: 'loud' })).toMatchObject({ code: 2, stderr: 'LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got "loud")\n' });
    expect(await runCli(['serve'], { CONFLUX_PORT: 'abc' })).toMatchObject({ code: 2, stderr: 'CONFLUX_PORT must be a port number 1-65535 (got "abc")\n' });
    expect(await runCli(['serve', '--log-format', 'xml'])).toMatchObject({ code: 2, stderr: '--log-format must be one of pretty, json (got "xml")\n' });
  });

  it('serve: a port in use is reported before the database is opened or an upstream started', async () => {
    const port = await holdPort();
    const dataDir = await mkdtemp(join(tmpdir(), 'conflux-data-'));
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}`);
    const result = await runCli(['serve', '-c', config, '--port', String(port)], { CONFLUX_DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    expect(result.code).toBe(1);
    expect(logLines(result.stderr).map((line) => [line.level, line.msg])).toEqual([
      [30, `config ${config}`],
      [30, 'auth: none'],
      [60, `port ${port} is in use (another Conflux or program?): set CONFLUX_PORT or gateway.port`],
    ]);
    expect(result.stderr).not.toContain('database ready');
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
  });

  it.runIf(hasScript)('serve on a terminal: readable coloured lines; --log-format json or LOG_FORMAT=json keep JSON', async () => {
    const port = await holdPort();
    const config = await writeConfig('servers: {}\n');
    // `script` runs the command on a pseudo-terminal: stderr is a TTY, as in a person's shell.
    const onTerminal = (extra: string, env: Record<string, string> = {}) =>
      new Promise<string>((resolve) => {
        const command = `'${process.execPath}' ${nodeArgs(CLI).map((arg) => `'${arg}'`).join(' ')} serve -c '${config}' --port ${port} ${extra}`;
        const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        running.push(child);
        let output = '';
        child.stdout.on('data', (c) => (output += c));
        child.on('exit', () => resolve(output));
      });
    const pretty = await onTerminal('');
    const fatal = pretty.split(/\r?\n/).find((line) => line.includes('FATAL'));
    expect(fatal).toMatch(/^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}\] \u001b\[41mFATAL\u001b\[49m: /);
    expect(fatal).toContain(`port ${port} is in use (another Conflux or program?)`);
    expect(pretty).toMatch(/\u001b\[32mINFO\u001b\[39m: \u001b\[36mauth: none/);

    for (const json of [await onTerminal('--log-format json'), await onTerminal('', { LOG_FORMAT: 'json' })]) {
      const lines = json.split(/\r?\n/).filter(Boolean);
      expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(`port ${port} is in use (another Conflux or program?): set CONFLUX_PORT or gateway.port`);
    }
  });

  it('serve: the banner says config, auth, database and address, then how many upstreams are ready and why not', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'conflux-data-'));
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}${fixtureServer('beta')}  broken:\n    command: /nonexistent/conflux-test-server\n`);
    const { child, output, done } = startCli(['serve', '-c', config, '--port', '0'], { CONFLUX_DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    running.push(child);
    await waitFor(() => /upstreams ready/.test(output().stderr) || child.exitCode !== null, 120_000, 'the upstream summary');
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
    const lines = logLines(output().stderr);
    const pgdata = join(dataDir, 'pgdata');
    const expected = [
      `config ${config}`,
      'auth: none',
      // From the migrated template where `prepare` made one, by initdb otherwise (tests/integration/embedded-template.test.ts).
      new RegExp(`^creating the embedded database in ${pgdata} (from the migrated template )?\\(first start only`),
      /^embedded database created in \d+\.\d s( from the template)?$/,
      `database ready: embedded PGlite in ${pgdata}`,
      /^Conflux listening on http:\/\/127\.0\.0\.1:\d+\/mcp$/,
      '2/3 upstreams ready; broken is misconfigured (cannot start "/nonexistent/conflux-test-server": command not found)',
    ];
    // in this order, with other lines between
    const found = expected.map((message) => lines.findIndex((line) => (typeof message === 'string' ? line.msg === message : message.test(line.msg))));
    expect(found.every((index) => index >= 0), output().stderr).toBe(true);
    expect([...found].sort((a, b) => a - b)).toEqual(found);
    expect(lines[found.at(-1)!]).toMatchObject({ level: 40, ready: 2, upstreams: 3 });
  });

  it('migrate and serve: the root cause of a database that cannot be used, never a stack or a password', async () => {
    const closed = await freePort();
    const refusedUrl = `postgres://postgres:hunter2@127.0.0.1:${closed}/conflux`;
    expect(await runCli(['migrate'], { DATABASE_URL: refusedUrl })).toMatchObject({ code: 1, stderr: `migrate: connection refused at 127.0.0.1:${closed} (is PostgreSQL running there?)\n` });
    expect(await runCli(['migrate'], { DATABASE_URL: 'postgres://postgres:hunter2@[oops/conflux' })).toMatchObject({
      code: 1,
      stderr: 'migrate: invalid DATABASE_URL: not a URL (got "postgres://postgres:***@[oops/conflux")\n',
    });
    const keys = await runCli(['keys', 'list'], { DATABASE_URL: 'mysql://root:hunter2@127.0.0.1/conflux' });
    expect(keys).toMatchObject({ code: 1, stderr: 'keys: invalid DATABASE_URL: expected postgres://user:password@host:5432/database (got "mysql://root:***@127.0.0.1/conflux")\n' });

    const served = await runCli(['serve', '-c', await writeConfig('servers: {}\n'), '--port', '0'], { DATABASE_URL: refusedUrl, LOG_LEVEL: 'info' });
    expect(served.code).toBe(1);
    expect(logLines(served.stderr).at(-1)).toMatchObject({ level: 60, msg: `cannot open the database: connection refused at 127.0.0.1:${closed} (is PostgreSQL running there?)` });
    expect(served.stderr).not.toContain('hunter2');
    expect(served.stderr).not.toMatch(NO_STACK);

    if (!(await postgresAvailable())) return;
    const missing = new URL(TEST_DATABASE_URL);
    missing.pathname = '/conflux_no_such_database';
    const result = await runCli(['migrate'], { DATABASE_URL: missing.toString() });
    expect(result).toMatchObject({ code: 1, stderr: `migrate: database "conflux_no_such_database" does not exist (PostgreSQL at ${missing.hostname}:${missing.port || 5432})\n` });
  });

  it('migrate: names the migrations it applied, then says the database is up to date', async () => {
    const journal = JSON.parse(await readFile(join(ROOT, 'drizzle/meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
    const names = journal.entries.map((entry) => entry.tag).join(', ');
    const dataDir = await mkdtemp(join(tmpdir(), 'conflux-data-'));
    const pgdata = join(dataDir, 'pgdata');
    const first = await runCli(['migrate'], { CONFLUX_DATA_DIR: dataDir });
    // A new folder filled from the migrated template (which `prepare` makes) has nothing left to apply.
    if (first.stderr.includes('from the migrated template')) {
      expect(first).toMatchObject({ code: 0, stdout: `embedded PGlite in ${pgdata} is already up to date\n` });
      expect(first.stderr).toMatch(new RegExp(`^creating the embedded database in ${pgdata} from the migrated template \\(first start only\\)…\nembedded database created in \\d+\\.\\d s from the template\n$`));
    } else {
      expect(first).toMatchObject({ code: 0, stdout: `applied ${names} to embedded PGlite in ${pgdata}\n` });
      expect(first.stderr).toMatch(new RegExp(`^creating the embedded database in ${pgdata} \\(first start only; not from a template: .+\\)…\nembedded database created in \\d+\\.\\d s\n$`));
    }
    expect(await runCli(['migrate'], { CONFLUX_DATA_DIR: dataDir })).toMatchObject({ code: 0, stdout: `embedded PGlite in ${pgdata} is already up to date\n`, stderr: '' });

    if (!(await postgresAvailable())) return;
    const store = await freshPostgres();
    try {
      const url = new URL(store.url!);
      const where = `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`;
      expect(await runCli(['migrate'], { DATABASE_URL: store.url! })).toMatchObject({ code: 0, stdout: `applied ${names} to ${where}\n` });
      expect(await runCli(['migrate'], { DATABASE_URL: store.url! })).toMatchObject({ code: 0, stdout: `${where} is already up to date\n` });
    } finally {
      await store.dispose();
    }
  });

  it('keys and access: tables with headers, a duplicate name said plainly, a grant naming an unknown server kept with a warning', async () => {
    // A database of its own, as the lists are compared whole.
    const store = incidental ? await freshPostgres() : undefined;
    try {
      await keysAndAccessTables(store ? { DATABASE_URL: store.url! } : { CONFLUX_DATA_DIR: await mkdtemp(join(tmpdir(), 'conflux-data-')) });
    } finally {
      await store?.dispose();
    }
  });

  async function keysAndAccessTables(env: Record<string, string>) {
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}`);
    expect((await runCli(['keys', 'create', 'ci', '-c', config], env)).code).toBe(0);
    const duplicate = await runCli(['keys', 'create', 'ci', '-c', config], env);
    expect(duplicate).toMatchObject({ code: 1, stderr: 'keys create: an active API key is already named "ci"\n' });
    const keys = await runCli(['keys', 'list', '-c', config], env);
    expect(keys.stdout.split('\n')[0]).toBe('ID\tNAME\tSUBJECT\tGROUPS\tSTATE\tEXPIRES');
    expect(keys.stdout.split('\n')[1]).toMatch(/^\w+\tci\tkey:ci\t-\tactive\t-$/);

    const typo = await runCli(['access', 'grant', '--user', 'bob', '--server', 'alhpa', '-c', config], env);
    expect(typo.code).toBe(0);
    expect(typo.stderr).toBe('warning: no server named "alhpa" is in the config file or registered in the database (known: alpha); it applies once a server of that name exists\n');
    const known = await runCli(['access', 'grant', '--group', 'dev', '--server', 'alpha', '--level', 'read', '-c', config], env);
    expect(known).toMatchObject({ code: 0, stderr: '' });
    const list = await runCli(['access', 'list', '-c', config], env);
    expect(list.stdout.trimEnd().split('\n')).toEqual([
      'KIND\tID\tWHO\tSERVER\tACCESS',
      expect.stringMatching(/^grant\t\d+\tuser:bob\talhpa\tcall$/),
      expect.stringMatching(/^grant\t\d+\tgroup:dev\talpha\tread$/),
    ]);
  }

  it('tools: a table with a header, and which servers it still waits for', async () => {
    const config = await writeConfig(
      `servers:\n${fixtureServer('alpha')}  silent:\n    command: ${process.execPath}\n    args: ["-e", "setInterval(() => {}, 1000)"]\n    connectTimeout: 12\n`,
    );
    const result = await runCli(['tools', '-c', config]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('NAME\tDESCRIPTION');
    expect(lines).toContain('alpha__echo\tEchoes the text back');
    // The silent server never answers: it is still connecting when the first report is due.
    expect(result.stderr).toMatch(/^waiting for (alpha, )?silent to connect \(\d+ s so far, at most 60 s\)…$/m);
    expect(result.stderr).toMatch(/^warning: silent is down: /m);
  });

  it('.env in the working directory is read without overriding the real environment; --dotenv names another', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-cwd-'));
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}`);
    await writeFile(join(dir, '.env'), `# as .env.example suggests\nCONFLUX_CONFIG=${config}\nLOG_LEVEL=loud\n`);
    // LOG_LEVEL from the file is read, and refused...
    expect(await runCliIn(dir, ['validate'], {})).toMatchObject({ code: 2, stderr: 'LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got "loud")\n' });
    // ...unless the real environment sets it; CONFLUX_CONFIG still comes from the file.
    const valid = await runCliIn(dir, ['validate'], { LOG_LEVEL: 'warn' });
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain(config);

    await writeFile(join(dir, 'other.env'), 'CONFLUX_PORT=abc\n');
    expect(await runCliIn(dir, ['validate', '--dotenv', 'other.env'], { LOG_LEVEL: 'warn' })).toMatchObject({ code: 2, stderr: 'CONFLUX_PORT must be a port number 1-65535 (got "abc")\n' });
    expect(await runCliIn(dir, ['validate', '--dotenv', 'missing.env'], {})).toMatchObject({ code: 2, stderr: `cannot read the env file ${join(dir, 'missing.env')}: no such file\n` });
  });
});

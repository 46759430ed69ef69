import { createServer, type Server } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { commandUsage, globalUsage } from '../../src/cli-help.js';
import { EnvFileError, environmentWithEnvFile, mergeEnvFile } from '../../src/config/dotenv.js';
import { EnvironmentError, readEnvironment } from '../../src/config/env.js';
import { AuthSettingsSchema } from '../../src/config/schema.js';
import { PortUnavailableError, reservePort } from '../../src/http/port-reservation.js';
import { chooseLogFormat, createLogger } from '../../src/observability/logger.js';
import { connectBudgetMs, describeAuth, describeDatabase, describeUpstreams } from '../../src/startup-report.js';
import { DatabaseUnavailableError, postgresTarget, withoutPassword } from '../../src/store/database-errors.js';

/** A logger writing into a string, with the terminal decision injected as the CLI makes it. */
function capture(options: Parameters<typeof createLogger>[1]) {
  let text = '';
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  const logger = createLogger('info', { ...options, destination });
  return { logger, text: () => text };
}

const ESC = '\u001b[';
const LOCAL_ISO = /^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}\] /;

describe('log format', () => {
  it('is pretty on a terminal and JSON otherwise, unless asked for', () => {
    expect(chooseLogFormat(undefined, true)).toBe('pretty');
    expect(chooseLogFormat(undefined, false)).toBe('json');
    expect(chooseLogFormat('json', true)).toBe('json');
    expect(chooseLogFormat('pretty', false)).toBe('pretty');
  });

  it('on a terminal: the level name, local ISO time with its offset, colour, one line per entry', () => {
    const { logger, text } = capture({ terminal: true });
    logger.warn({ server: 'files' }, 'upstream down');
    const line = text();
    expect(line).toMatch(LOCAL_ISO);
    expect(line).toContain(`${ESC}33mWARN${ESC}39m`);
    expect(line).toContain('upstream down');
    expect(line).toContain('"server":"files"');
    expect(line).not.toContain('"service"');
    expect(line.trimEnd().split('\n')).toHaveLength(1);
    // the offset printed is this machine's
    const offset = -new Date().getTimezoneOffset();
    const sign = offset >= 0 ? '+' : '-';
    const hours = String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0');
    expect(line).toContain(`${sign}${hours}:${String(Math.abs(offset) % 60).padStart(2, '0')}]`);
  });

  it('pretty when asked for off a terminal: no colour codes', () => {
    const { logger, text } = capture({ terminal: false, format: 'pretty' });
    logger.info('hello');
    expect(text()).toMatch(LOCAL_ISO);
    expect(text()).toContain('INFO: hello');
    expect(text()).not.toContain(ESC);
  });

  it('JSON off a terminal, and with --log-format json on one', () => {
    for (const options of [{ terminal: false }, { terminal: true, format: 'json' as const }]) {
      const { logger, text } = capture(options);
      logger.info({ url: 'http://127.0.0.1:8000/mcp' }, 'listening');
      expect(JSON.parse(text())).toMatchObject({ level: 30, service: 'conflux', url: 'http://127.0.0.1:8000/mcp', msg: 'listening' });
    }
  });
});

describe('the environment', () => {
  const problems = (source: Record<string, string>) => {
    try {
      readEnvironment(source);
      return [];
    } catch (error) {
      expect(error).toBeInstanceOf(EnvironmentError);
      return [...(error as EnvironmentError).problems];
    }
  };

  it('names each unusable variable and what it accepts', () => {
    expect(problems({ LOG_LEVEL: 'loud' })).toEqual(['LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got "loud")']);
    expect(problems({ CONFLUX_PORT: 'abc' })).toEqual(['CONFLUX_PORT must be a port number 1-65535 (got "abc")']);
    expect(problems({ PORT: '70000' })).toEqual(['PORT must be a port number 1-65535 (got "70000")']);
    expect(problems({ LOG_FORMAT: 'xml', CONFLUX_PORT: '0' })).toEqual([
      'CONFLUX_PORT must be a port number 1-65535 (got "0")',
      'LOG_FORMAT must be one of pretty, json (got "xml")',
    ]);
  });

  it('reads good values', () => {
    expect(readEnvironment({ CONFLUX_PORT: '8080', LOG_LEVEL: 'debug', LOG_FORMAT: 'pretty' })).toMatchObject({ port: 8080, logLevel: 'debug', logFormat: 'pretty' });
    expect(readEnvironment({ PORT: '3000' })).toMatchObject({ port: 3000, logLevel: 'info', logFormat: undefined });
  });
});

describe('.env', () => {
  it('adds what the real environment lacks and overrides nothing, not even an empty value', () => {
    const merged = mergeEnvFile({ LOG_LEVEL: 'warn', EMPTY: '' }, { LOG_LEVEL: 'debug', EMPTY: 'filled', TOKEN: 'from-file' });
    expect(merged).toEqual({ LOG_LEVEL: 'warn', EMPTY: '', TOKEN: 'from-file' });
  });

  it('reads ./.env when there is one, --env-file when given (which must exist)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'conflux-env-'));
    expect(environmentWithEnvFile(undefined, { A: '1' }, dir)).toEqual({ variables: { A: '1' }, file: undefined });
    await writeFile(join(dir, '.env'), '# comment\nA=2\nB="two words"\nexport C=3\n');
    expect(environmentWithEnvFile(undefined, { A: '1' }, dir)).toEqual({ variables: { A: '1', B: 'two words', C: '3' }, file: join(dir, '.env') });
    await writeFile(join(dir, 'other.env'), 'D=4\n');
    expect(environmentWithEnvFile('other.env', {}, dir)).toEqual({ variables: { D: '4' }, file: join(dir, 'other.env') });
    expect(() => environmentWithEnvFile('missing.env', {}, dir)).toThrow(new EnvFileError(`cannot read the env file ${join(dir, 'missing.env')}: no such file`));
  });
});

describe('the start banner', () => {
  it('says the auth mode', () => {
    expect(describeAuth('none')).toBe('none');
    expect(describeAuth(AuthSettingsSchema.parse({ apiKeys: true, jwt: { secret: 'x'.repeat(32) } }))).toBe('API keys, JWTs signed with a shared secret');
    expect(describeAuth(AuthSettingsSchema.parse({ oauth: { issuer: 'https://login.example.com/' } }))).toBe('OAuth tokens from https://login.example.com/');
  });

  it('says the database without credentials', () => {
    expect(describeDatabase(undefined, '.conflux/pgdata')).toBe(`embedded PGlite in ${resolve('.conflux/pgdata')}`);
    expect(describeDatabase('postgres://conflux:s3cret@db.internal:6432/gateway', 'unused')).toBe('PostgreSQL at db.internal:6432/gateway');
    expect(describeDatabase('postgresql://me@localhost/', 'unused')).toBe('PostgreSQL at localhost:5432/me');
  });

  it('counts ready upstreams and says why the others are not', () => {
    const statuses = [
      { name: 'a', state: 'ready' as const, lastError: undefined },
      { name: 'b', state: 'down' as const, lastError: 'spawn nope ENOENT' },
      { name: 'c', state: 'disabled' as const, lastError: undefined },
      { name: 'd', state: 'connecting' as const, lastError: undefined },
    ];
    expect(describeUpstreams(statuses.slice(0, 1))).toBe('1/1 upstreams ready');
    expect(describeUpstreams(statuses)).toBe('1/3 upstreams ready; b is down (spawn nope ENOENT); d is connecting');
    expect(describeUpstreams([])).toBe('no upstreams configured');
  });

  it('waits for the slowest connection a server is allowed', () => {
    expect(connectBudgetMs([])).toBe(5000);
    expect(connectBudgetMs([{ timeout: 60 }, { timeout: 5, connectTimeout: 3 }])).toBe(60_000);
    expect(connectBudgetMs([{ timeout: 2 }])).toBe(10_000);
  });
});

describe('DATABASE_URL', () => {
  it('names the server and database, and says what is wrong without repeating the password', () => {
    expect(postgresTarget('postgres://u:pw@h1:5433,h2:5434/app')).toEqual({ address: 'h1:5433', database: 'app' });
    expect(() => postgresTarget('mysql://root:hunter2@db/app')).toThrow(new DatabaseUnavailableError('invalid DATABASE_URL: expected postgres://user:password@host:5432/database (got "mysql://root:***@db/app")'));
    expect(() => postgresTarget('postgres://root:hunter2@[oops/app')).toThrow(new DatabaseUnavailableError('invalid DATABASE_URL: not a URL (got "postgres://root:***@[oops/app")'));
    expect(withoutPassword('postgres://nobody@host/db')).toBe('postgres://nobody@host/db');
  });
});

describe('port reservation', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((done) => s.close(done))));
  });

  it('says a port in use and what to set; a released port can be listened on', async () => {
    const taken = createServer();
    servers.push(taken);
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    const port = (taken.address() as { port: number }).port;
    const refused = await reservePort('127.0.0.1', port).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PortUnavailableError);
    expect((refused as Error).message).toBe(`port ${port} is in use (another Conflux or program?): set CONFLUX_PORT or gateway.port`);

    await new Promise((done) => taken.close(done));
    servers.pop();
    const reservation = await reservePort('127.0.0.1', port);
    await expect(reservePort('127.0.0.1', port)).rejects.toThrow(PortUnavailableError);
    await reservation.release();
    await reservation.release(); // twice is harmless
    const after = createServer();
    servers.push(after);
    await new Promise<void>((done, fail) => after.once('error', fail).listen(port, '127.0.0.1', done));
  });
});

describe('help', () => {
  it('per command, and every command in the global one', () => {
    const keys = commandUsage('keys')!;
    expect(keys).toMatch(/^Usage: conflux keys create NAME/);
    expect(keys).toContain('--expires WHEN');
    expect(keys).not.toContain('Commands:');
    expect(commandUsage('nope')).toBeUndefined();
    expect(commandUsage('toString')).toBeUndefined();
    for (const command of ['serve', 'validate', 'migrate', 'tools', 'call', 'keys create', 'access grant', 'connections list']) expect(globalUsage()).toContain(`  ${command} `);
    expect(globalUsage()).toContain('--version');
  });
});

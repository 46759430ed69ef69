import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { startCredentialCheckingSseUpstream, startCredentialCheckingUpstream, type CredentialCheckingUpstream } from '../fixtures/protected-upstream.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite } from '../helpers/databases.js';
import { textOf, waitFor } from '../helpers/gateway.js';

/** Every credential in this test contains this word, so "no secret shows" is one check. */
const MARK = 'SEKRIT';
const BEARER = `bearer-${MARK}-0001`;
const API_KEY = `apikey-${MARK}-0002`;
const BASIC_PASSWORD = `basicpw-${MARK}-0003`;
const TEMPLATE = `tmpl-${MARK}-0004`;
const QUERY_TOKEN = `qtok-${MARK}-0005`;
const QUERY_KEY = `qkey-${MARK}-0006`;
/** Written into the config as it is, and refused by the upstream, which repeats it in its 401. */
const LITERAL = `literal-${MARK}-0007`;
const FILE_V1 = `file-${MARK}-v1`;
const FILE_V2 = `file-${MARK}-v2`;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/**
 * Static credentials towards upstreams, end to end: each method reaches an upstream that checks
 * it (in a header or the query), a missing credential leaves only its own server
 * misconfigured, a rotated file is used on the next call, and no credential shows anywhere a
 * caller or an operator looks.
 */
describe('static upstream credentials', () => {
  let upstream: CredentialCheckingUpstream;
  let sseUpstream: CredentialCheckingUpstream;
  let conflux: Conflux;
  let database: OpenedDatabase;
  let base: string;
  let dir: string;
  let keyFile: string;
  let acceptedFileKey = FILE_V1;
  const logLines: string[] = [];
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-credentials-'));
    keyFile = join(dir, 'upstream.key');
    await writeFile(keyFile, `${FILE_V1}\n`);
    upstream = await startCredentialCheckingUpstream({
      accept: ({ headers, query }) => {
        if (headers.authorization === `Bearer ${BEARER}`) return 'bearer';
        if (headers['x-api-key'] === API_KEY) return 'api_key';
        if (headers.authorization === basic('svc', BASIC_PASSWORD)) return 'basic';
        if (headers.authorization === `Token ${TEMPLATE}`) return 'template';
        if (query.get('access_token') === QUERY_TOKEN) return 'bearer-query';
        if (query.get('key') === QUERY_KEY) return 'api_key-query';
        if (headers['x-file-key'] === acceptedFileKey) return `file:${acceptedFileKey.slice(-2)}`;
        return undefined;
      },
    });
    sseUpstream = await startCredentialCheckingSseUpstream({
      label: 'legacy',
      accept: ({ headers, query }) => {
        if (headers['x-api-key'] === API_KEY) return 'api_key';
        if (query.get('access_token') === QUERY_TOKEN) return 'bearer-query';
        return undefined;
      },
    });
    const url = upstream.url;
    const config = parseConfig(
      JSON.stringify({
        gateway: {
          port: 0,
          reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
          auth: { jwt: { secret: JWT_SECRET } },
          access: { defaultLevel: 'read' },
        },
        servers: {
          bearer: { url, auth: { method: 'bearer', credential: 'env://UPSTREAM_BEARER' } },
          apikey: { url, auth: { method: 'api_key', credential: 'env://UPSTREAM_API_KEY' } },
          basic: { url, auth: { method: 'basic', username: 'svc', credential: 'env://UPSTREAM_BASIC' } },
          template: { url, auth: { method: 'template', template: 'Token {credential}', credential: 'env://UPSTREAM_TEMPLATE' } },
          bearerquery: { url, auth: { method: 'bearer', location: 'query', credential: 'env://UPSTREAM_QUERY_TOKEN' } },
          keyquery: { url, auth: { method: 'api_key', location: 'query', param: 'key', credential: 'env://UPSTREAM_QUERY_KEY' } },
          rotating: { url, auth: { method: 'api_key', header: 'X-File-Key', credential: pathToFileURL(keyFile).href } },
          literal: { url, auth: { method: 'bearer', credential: LITERAL } },
          unset: { url, auth: { method: 'bearer', credential: 'env://UPSTREAM_NOT_SET' } },
          ssekey: { transport: 'sse', url: sseUpstream.url, auth: { method: 'api_key', credential: 'env://UPSTREAM_API_KEY' } },
          ssequery: { transport: 'sse', url: sseUpstream.url, auth: { method: 'bearer', location: 'query', credential: 'env://UPSTREAM_QUERY_TOKEN' } },
        },
      }),
      { source: 'test', env: {} },
    );
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    database = await freshPglite().open();
    await database.migrate();
    conflux = createConflux(config, {
      logger: pino({ level: 'debug' }, sink),
      database,
      env: {
        UPSTREAM_BEARER: BEARER,
        UPSTREAM_API_KEY: API_KEY,
        UPSTREAM_BASIC: BASIC_PASSWORD,
        UPSTREAM_TEMPLATE: TEMPLATE,
        UPSTREAM_QUERY_TOKEN: QUERY_TOKEN,
        UPSTREAM_QUERY_KEY: QUERY_KEY,
      },
    });
    await conflux.start();
    const listening = await conflux.listen('127.0.0.1', 0);
    base = listening.url.replace(/\/mcp$/, '');
    await conflux.upstreams.settled(15_000);
    tokens.admin = await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] });
    tokens.user = await hs256Token({ sub: 'u-user', email: 'user@example.com' });
  }, 60_000);

  afterAll(async () => {
    await conflux?.stop();
    await database?.close();
    await upstream?.close();
    await sseUpstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const status = (name: string) => conflux.upstreams.statuses().find((s) => s.name === name);
  const call = async (tool: string, args: Record<string, unknown> = {}): Promise<{ text: string; isError: boolean }> => {
    const client = await clientWithHeaders(`${base}/mcp`, bearer(tokens.admin!));
    try {
      const result = await client.client.callTool({ name: tool, arguments: args });
      return { text: textOf(result), isError: result.isError === true };
    } finally {
      await client.close();
    }
  };

  it('reaches an upstream that checks each method, in a header or in the query', async () => {
    for (const name of ['bearer', 'apikey', 'basic', 'template', 'bearerquery', 'keyquery', 'rotating']) expect(status(name)?.state, name).toBe('ready');
    expect(await call('bearer__whoami')).toEqual({ text: 'bearer', isError: false });
    expect(await call('apikey__whoami')).toEqual({ text: 'api_key', isError: false });
    expect(await call('basic__whoami')).toEqual({ text: 'basic', isError: false });
    expect(await call('template__whoami')).toEqual({ text: 'template', isError: false });
    expect(await call('bearerquery__whoami')).toEqual({ text: 'bearer-query', isError: false });
    expect(await call('keyquery__whoami')).toEqual({ text: 'api_key-query', isError: false });
  });

  it('sends the same credentials on the legacy SSE wire: the stream and every message', async () => {
    expect(status('ssekey')).toMatchObject({ state: 'ready', wire: 'sse' });
    expect(status('ssequery')).toMatchObject({ state: 'ready', wire: 'sse' });
    expect(await call('ssekey__echo', { text: 'hi' })).toEqual({ text: 'legacy: hi', isError: false });
    expect(await call('ssequery__echo', { text: 'hi' })).toEqual({ text: 'legacy: hi', isError: false });
    for (const who of ['api_key', 'bearer-query']) {
      expect(sseUpstream.accepted).toContain(`GET ${who}`);
      expect(sseUpstream.accepted).toContain(`POST ${who}`);
    }
    expect(sseUpstream.refused()).toBe(0);
  });

  it('leaves a server whose credential is not set misconfigured, saying which, while the others run', () => {
    expect(status('unset')).toMatchObject({ state: 'misconfigured', lastError: 'the credential env://UPSTREAM_NOT_SET is not set', nextRetryAt: undefined });
    expect(status('bearer')?.state).toBe('ready');
  });

  it('reports a refused credential clearly, without retrying', () => {
    expect(status('literal')).toMatchObject({ state: 'misconfigured', nextRetryAt: undefined });
    expect(status('literal')?.lastError).toContain('upstream refused the credentials (401)');
  });

  it('uses a rotated credential file on the next call', async () => {
    expect(await call('rotating__whoami')).toEqual({ text: 'file:v1', isError: false });
    // Swapped in by rename, as secret managers do; the upstream accepts only the new key from now on.
    await writeFile(`${keyFile}.new`, `${FILE_V2}\n`);
    await rename(`${keyFile}.new`, keyFile);
    acceptedFileKey = FILE_V2;
    expect(await call('rotating__whoami')).toEqual({ text: 'file:v2', isError: false });
  });

  it('keeps every credential out of tool errors, /servers, the REST API, the audit trail and the logs', async () => {
    // The attack: an upstream that repeats the credentials it was sent in an error.
    for (const server of ['bearer', 'apikey', 'basic', 'template', 'bearerquery', 'keyquery', 'rotating']) {
      const failed = await call(`${server}__explode`);
      expect(failed.isError, server).toBe(true);
      expect(failed.text).toContain('HTTP 500');
      expect(failed.text).not.toContain(MARK);
    }
    const seen: string[] = [];
    for (const who of ['admin', 'user']) {
      const servers = await fetch(`${base}/servers`, { headers: bearer(tokens[who]!) });
      expect(servers.status).toBe(200);
      seen.push(await servers.text());
      const api = await fetch(`${base}/api/v1/servers`, { headers: bearer(tokens[who]!) });
      expect(api.status).toBe(200);
      seen.push(await api.text());
      for (const name of ['literal', 'rotating', 'bearer']) {
        const one = await fetch(`${base}/api/v1/servers/${name}`, { headers: bearer(tokens[who]!) });
        expect(one.status).toBe(200);
        seen.push(await one.text());
      }
    }
    // Admins see the references (they name where the secret is) and the literal hidden.
    const literal = (await (await fetch(`${base}/api/v1/servers/literal`, { headers: bearer(tokens.admin!) })).json()) as { definition: { auth: { credential: string } } };
    expect(literal.definition.auth.credential).toBe('[redacted]');
    const byEnv = (await (await fetch(`${base}/api/v1/servers/bearer`, { headers: bearer(tokens.admin!) })).json()) as { definition: { auth: { credential: string } } };
    expect(byEnv.definition.auth.credential).toBe('env://UPSTREAM_BEARER');
    await conflux.audit.flush();
    const audit = await fetch(`${base}/api/v1/audit?limit=1000`, { headers: bearer(tokens.admin!) });
    expect(audit.status).toBe(200);
    const rows = await audit.text();
    expect(rows).toContain('explode');
    seen.push(rows);
    await waitFor(() => logLines.some((line) => line.includes('upstream connection failed')), 5000, 'the failed connections in the log');
    seen.push(logLines.join('\n'));
    for (const text of seen) expect(text).not.toContain(MARK);
  });
});

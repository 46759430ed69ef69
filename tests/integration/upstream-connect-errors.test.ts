import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamConnectError } from '../../src/upstream/errors.js';
import { httpError } from '../../src/upstream/http-responses.js';
import { classifyConnectFailure, describeConnectFailure, urlForMessage } from '../../src/upstream/failure-classification.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { nodeArgs } from '../helpers/built-entries.js';
import { capturedLog } from '../helpers/captured-log.js';
import { ROOT, testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps } from '../helpers/upstream-deps.js';

/*
 * What a person reads when an upstream cannot be connected: a stdio server that writes its
 * banner or its log on stdout is told so, and an HTTP server's failure names its URL (without
 * its secrets) and the cause in words. Real child processes and real loopback servers.
 */

const BANNER_SERVER = resolve(ROOT, 'tests/fixtures/stdout-banner-server.ts');
const HINT = '— MCP stdio servers must log to stderr';

/** No second attempt during a test: the first failure's words stay in lastError. */
const oneAttempt = { initialDelayMs: 600_000, maxDelayMs: 600_000, maxAttempts: 5 };

const opened: UpstreamConnection[] = [];

function connect(name: string, entry: Record<string, unknown>) {
  const { logger, lines } = capturedLog<{ level: number; msg: string; line?: string }>('info');
  const config = testConfig({ [name]: entry }).servers[name]!;
  const connection = new UpstreamConnection(name, config, directDeps({ logger, reconnect: oneAttempt }));
  opened.push(connection);
  connection.start();
  return { connection, lines };
}

async function settled(connection: UpstreamConnection, what: string): Promise<void> {
  await waitFor(() => connection.state === 'ready' || connection.lastError !== undefined, 30_000, what);
}

afterAll(async () => {
  await Promise.all(opened.map((c) => c.stop()));
});

describe('a stdio upstream that writes non-protocol text on stdout', () => {
  const banner = (mode: string) => ({ command: process.execPath, args: [...nodeArgs(BANNER_SERVER), mode], cwd: ROOT, connectTimeout: 2 });

  it('works past a start banner, and the log says the banner belongs on stderr', async () => {
    const { connection, lines } = connect('banner', banner('banner'));
    await settled(connection, 'banner to connect');
    expect(connection.state).toBe('ready');
    expect(connection.lastError).toBeUndefined();
    const result = await connection.request('tools/call', { name: 'echo', arguments: { text: 'hi' } });
    expect(result).toMatchObject({ content: [{ type: 'text', text: 'banner: hi' }] });
    // Said once, quoting the first line without its colour codes.
    const warnings = lines.filter((l) => l.msg.startsWith('upstream wrote non-protocol output on stdout'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, line: 'Starting banner-server v1.2.3 on stdio' });
  });

  it('says so, quoting its first line, when it never answers', async () => {
    const { connection } = connect('chatty', banner('chatty'));
    await settled(connection, 'chatty to fail');
    expect(connection.state).toBe('down');
    expect(connection.lastError).toMatch(
      /^wrote non-protocol output on stdout: "Starting banner-server v1\.2\.3 on stdio" \(and \d+ more lines\) — MCP stdio servers must log to stderr \(then: timed out waiting for initialize\)$/,
    );
  });

  it('says so before how it exited, when it is no MCP server at all', async () => {
    const { connection } = connect('usage', banner('usage'));
    await settled(connection, 'usage to fail');
    expect(connection.state).toBe('down');
    expect(connection.lastError).toBe(`wrote non-protocol output on stdout: "Usage: banner-server <settings.json>" (and 2 more lines) ${HINT} (then: process exited with code 2)`);
  });
});

describe('an HTTP upstream that cannot be connected', () => {
  let notFound: Server;
  let silent: Server;
  let closedPort: number;
  const base = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  beforeAll(async () => {
    notFound = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found'));
    silent = createServer(() => {}); // accepts, and never answers
    await Promise.all([notFound, silent].map((s) => new Promise<void>((done) => s.listen(0, '127.0.0.1', done))));
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise((done) => probe.close(done));
  });

  afterAll(async () => {
    for (const server of [notFound, silent]) {
      server?.closeAllConnections();
      await new Promise((done) => server?.close(done));
    }
  });

  it('names a refused connection and the URL, without its credentials or query values', async () => {
    for (const transport of ['streamable-http', 'sse'] as const) {
      // fetch, which the SSE transport uses, refuses a URL with a user name: only Streamable HTTP gets one.
      const userinfo = transport === 'sse' ? '' : 'alice:hunter2@';
      const { connection } = connect(`refused-${transport}`, { transport, url: `http://${userinfo}127.0.0.1:${closedPort}/mcp?api_key=k-123&region=eu` });
      await settled(connection, `refused over ${transport}`);
      expect(connection.state).toBe('down');
      expect(connection.lastError).toBe(`connection refused at http://127.0.0.1:${closedPort}/mcp?api_key=[redacted]&region=[redacted] (is the server running?)`);
    }
  });

  it('says that the server answered 404 and that MCP endpoints are usually /mcp, over either wire', async () => {
    const streamable = connect('wrong-path', { transport: 'streamable-http', url: `${base(notFound)}/api` });
    const sse = connect('wrong-sse-path', { transport: 'sse', url: `${base(notFound)}/events` });
    await settled(streamable.connection, 'the 404 over Streamable HTTP');
    await settled(sse.connection, 'the 404 over SSE');
    expect(streamable.connection.lastError).toBe(`the server answered 404 at ${base(notFound)}/api (is the path right? MCP endpoints are usually /mcp)`);
    expect(sse.connection.lastError).toBe(`the server answered 404 at ${base(notFound)}/events (is the path right? legacy SSE endpoints are usually /sse)`);
    // A wrong path is retried like any outage: the server may be deployed there yet.
    expect(streamable.connection.state).toBe('down');
  });

  it('names a TLS handshake with a server that does not speak TLS', async () => {
    const { connection } = connect('not-tls', { transport: 'streamable-http', url: `${base(notFound).replace('http:', 'https:')}/mcp` });
    await settled(connection, 'the TLS failure');
    expect(connection.lastError).toBe(`TLS failed at ${base(notFound).replace('http:', 'https:')}/mcp: the server does not speak TLS (is it http://, not https://?)`);
  });

  it('gives a silent server its connect timeout, over legacy SSE too, and says how long it waited', async () => {
    const streamable = connect('silent', { transport: 'streamable-http', url: `${base(silent)}/mcp`, connectTimeout: 1 });
    const sse = connect('silent-sse', { transport: 'sse', url: `${base(silent)}/sse`, connectTimeout: 1 });
    await settled(streamable.connection, 'the silent Streamable HTTP server to time out');
    await settled(sse.connection, 'the silent SSE server to time out');
    expect(streamable.connection.lastError).toBe(`no answer within 1s at ${base(silent)}/mcp`);
    expect(sse.connection.lastError).toBe(`no answer within 1s at ${base(silent)}/sse`);
  });

  it('names a host that does not resolve', async () => {
    const { connection } = connect('nowhere', { transport: 'streamable-http', url: 'http://conflux-no-such-host.invalid/mcp' });
    await settled(connection, 'the lookup to fail');
    expect(connection.lastError).toMatch(/^(host not found|host name lookup failed \(no answer from DNS\)) at http:\/\/conflux-no-such-host\.invalid\/mcp$/);
  });
});

describe('describeConnectFailure', () => {
  const attempt = { url: 'https://mcp.example.com/mcp', wire: 'streamable-http' as const, credentials: true, timeoutMs: 1500 };

  it('keeps the words a refused credential has always had, and asks for credentials when none were sent', () => {
    const refused = httpError(401, 'Unauthorized', '', undefined);
    expect(describeConnectFailure(refused, attempt)).toBe('upstream refused the credentials (401) at https://mcp.example.com/mcp');
    expect(describeConnectFailure(refused, { ...attempt, credentials: false })).toBe(
      'the server answered 401 at https://mcp.example.com/mcp: it wants credentials (give the server `auth` or `headers`)',
    );
    expect(describeConnectFailure(new SdkError(SdkErrorCode.RequestTimeout, 'probe timed out'), attempt)).toBe('no answer within 1.5s at https://mcp.example.com/mcp');
    // Worded, a refusal of the credentials is still one no retry can fix.
    expect(classifyConnectFailure(new UpstreamConnectError('worded', { cause: refused }))).toBe('misconfigured');
  });

  it('shows a URL without user, password, query values or fragment', () => {
    expect(urlForMessage('https://u:p@h.example:8443/a/mcp?token=t&x=1&x=2#frag')).toBe('https://h.example:8443/a/mcp?token=[redacted]&x=[redacted]');
    expect(urlForMessage('not a url')).toBe('(an invalid URL)');
    // Keys some services take in the path: never in a message every caller may read.
    expect(urlForMessage('https://h.example/mcp/a1b2c3d4e5f6g7h8i9j0/sse')).toBe('https://h.example/mcp/[redacted]/sse');
    expect(urlForMessage('https://h.example/servers/0123456789abcdefghijklmnopqrstuv')).toBe('https://h.example/servers/[redacted]');
    expect(urlForMessage('https://h.example/v1/github-tools/mcp')).toBe('https://h.example/v1/github-tools/mcp');
  });
});

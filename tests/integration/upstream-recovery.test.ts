import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamBadResponseError } from '../../src/upstream/errors.js';
import { UpstreamConnection, type UpstreamDeps } from '../../src/upstream/upstream-connection.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps } from '../helpers/upstream-deps.js';

/**
 * A bare stdio MCP server whose behaviour is read from a file at each start, so a test can
 * change how the next restart behaves: `ok` answers everything (its `garbage` tool writes HTML
 * to stdout instead of an answer, then exits), `crash-after-init` exits right after initialize,
 * `mute` stops answering pings.
 */
const SCRIPT = `
const mode = require('node:fs').readFileSync(process.argv[1], 'utf8').trim();
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (m.method === 'initialize') return send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'bare', version: '1' } } });
  if (m.method === 'notifications/initialized' && mode === 'crash-after-init') process.exit(5);
  if (m.method === 'tools/list') return send({ id: m.id, result: { tools: [{ name: 'garbage', inputSchema: { type: 'object' } }] } });
  if (m.method === 'ping' && mode !== 'mute') return send({ id: m.id, result: {} });
  if (m.method === 'tools/call') { process.stdout.write('<html>oops</html>\\n'); setTimeout(() => process.exit(1), 20); }
}).on('close', () => process.exit(0));
`;

describe('upstream connection recovery', () => {
  let dir: string;
  const open: UpstreamConnection[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-upstream-'));
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  async function bareServer(name: string, mode: string, deps: Partial<UpstreamDeps> = {}) {
    const modeFile = join(dir, `${name}.mode`);
    await writeFile(modeFile, mode);
    const config = testConfig({ [name]: { command: process.execPath, args: ['-e', SCRIPT, modeFile], timeout: 5 } }).servers[name]!;
    const connection = new UpstreamConnection(name, config, directDeps({ reconnect: { initialDelayMs: 20, maxDelayMs: 40, maxAttempts: 3 }, ...deps }));
    open.push(connection);
    connection.start();
    await waitFor(() => connection.state === 'ready', 10_000, `${name} ready`);
    return { connection, setMode: (next: string) => writeFile(modeFile, next) };
  }

  it('gives up after maxAttempts when reconnects fail after initialize, even after a long stable connection', async () => {
    let skew = 0;
    const { connection, setMode } = await bareServer('flaky', 'ok', { now: () => Date.now() + skew });
    skew = 120_000; // the first connection was up for two minutes: its loss earns a fresh budget
    await setMode('crash-after-init');
    process.kill(connection.status().pid!, 'SIGKILL');
    await waitFor(() => /gave up/.test(connection.lastError ?? ''), 10_000, 'the restart limit');
    expect(connection.status()).toMatchObject({ state: 'down', nextRetryAt: undefined, connectedAt: undefined });
    expect(connection.lastError).toMatch(/^process exited with code 5 \(gave up after 3 attempts; restart it or change its config\)$/);
  });

  it('keeps the reason of a lost connection (unanswered pings) and stops reporting it connected', async () => {
    const { connection } = await bareServer('mute', 'mute', {
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, maxAttempts: 0 },
      health: { breaker: { failureThreshold: 3, cooldownMs: 30_000 }, pingIntervalMs: 50, pingTimeoutMs: 50, pingFailureThreshold: 2 },
    });
    expect(connection.status().connectedAt).toBeDefined();
    await waitFor(() => connection.state === 'down', 10_000, 'the ping failures');
    await new Promise((r) => setTimeout(r, 100)); // the old client's close lands in the meantime
    expect(connection.status()).toMatchObject({ state: 'down', lastError: 'no answer to 2 pings', connectedAt: undefined });
  });

  it('says a stdio server answered with something that is not MCP, not that it lost its connection', async () => {
    const { connection } = await bareServer('garbled', 'ok', { reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, maxAttempts: 0 } });
    const error = await connection.request('tools/call', { name: 'garbage', arguments: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamBadResponseError);
    expect((error as Error).message).toBe(
      'upstream "garbled" sent a response to tools/call that is not MCP: stdout carried something that is not JSON-RPC (then: process exited with code 1)',
    );
  });
});

describe('an HTTP upstream answering with a body that is not MCP', () => {
  let server: Server;
  let url: string;
  let connection: UpstreamConnection | undefined;

  beforeAll(async () => {
    // Speaks just enough Streamable HTTP to initialize, then answers calls with a proxy's error page.
    server = createServer((req, res) => {
      if (req.method !== 'POST') return res.writeHead(405).end();
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const m = JSON.parse(body) as { id?: number; method: string; params?: { protocolVersion?: string } };
        const json = (result: unknown) => res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's1' }).end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
        if (m.method === 'initialize') return json({ protocolVersion: m.params!.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'h', version: '1' } });
        if (m.id === undefined) return res.writeHead(202).end();
        if (m.method === 'tools/list') return json({ tools: [] });
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Bad gateway</body></html>');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    await connection?.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('fails the call at once with what came back', async () => {
    const config = testConfig({ html: { url, timeout: 20 } }).servers.html!;
    connection = new UpstreamConnection('html', config, directDeps({ reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, maxAttempts: 0 } }));
    connection.start();
    await waitFor(() => connection!.state === 'ready', 10_000, 'html ready');
    const error = await connection.request('tools/call', { name: 'x', arguments: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamBadResponseError);
    expect((error as Error).message).toBe(
      'upstream "html" sent a response to tools/call that is not MCP: HTTP 200 (text/html) carried something that is not JSON-RPC: "<html><body>Bad gateway</body></html>"',
    );
    expect(connection.status().state).toBe('ready'); // it answered: the connection itself is fine
  });
});

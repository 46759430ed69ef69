import { resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ListRootsRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux, type ConfluxDeps } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { nodeArgs } from './built-entries.js';
import { scaled } from './load-scale.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const STDIO_FIXTURE = resolve(ROOT, 'tests/fixtures/stdio-server.ts');

/** A stdio server entry that runs the test fixture with the given label. */
export function stdioFixture(label: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: [...nodeArgs(STDIO_FIXTURE), label], cwd: ROOT, ...extra };
}

/** A validated config built from plain objects, with quick reconnects for tests. */
export function testConfig(servers: Record<string, unknown>, gateway: Record<string, unknown> = {}): Config {
  const text = JSON.stringify({ gateway: { port: 0, reconnect: { initialDelayMs: 100, maxDelayMs: 500 }, ...gateway }, servers });
  return parseConfig(text, { source: 'test', env: {} });
}

export interface RunningGateway {
  conflux: Conflux;
  url: string;
  stop(): Promise<void>;
}

export interface GatewayOptions extends Partial<ConfluxDeps> {
  /** Default: any free one. */
  port?: number;
  /**
   * What starting waits for once the gateway listens. Default: every upstream settled (15 s at
   * the most), then one turn of the event loop.
   */
  until?: (conflux: Conflux) => Promise<void>;
}

async function settled(conflux: Conflux): Promise<void> {
  await conflux.upstreams.settled(15_000);
  await new Promise((r) => setImmediate(r));
}

/**
 * Starts a gateway (silent, unless given a logger) on a loopback port and waits as `until` says.
 * `stop()` may be called more than once (a test that stops it mid-way still stops it in
 * `finally`); a gateway that fails to start is stopped before the error is thrown, leaving no
 * process or port.
 */
export async function startGateway(config: Config, options: GatewayOptions = {}): Promise<RunningGateway> {
  const { port = 0, until = settled, ...deps } = options;
  const conflux = createConflux(config, { ...deps, logger: deps.logger ?? silentLogger() });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= conflux.stop());
  try {
    await conflux.start();
    const { url } = await conflux.listen('127.0.0.1', port);
    await until(conflux);
    return { conflux, url, stop };
  } catch (error) {
    await stop().catch((stopError: unknown) => {
      throw new AggregateError([error, stopError], 'the gateway failed to start, then to stop');
    });
    throw error;
  }
}

/** A client's session with the gateway, as a test holds it. */
export interface ClientSession<C> {
  client: C;
  /** The `Mcp-Session-Id` the gateway gave (none to a 2026-07-28 client, which has no session). */
  sessionId: string | undefined;
  close(): Promise<void>;
}

/** What `openSession` uses of a client and of its transport: both SDKs' have it. */
interface SessionClient<T> {
  connect(transport: T): Promise<void>;
  close(): Promise<void>;
}
interface SessionTransport {
  readonly sessionId?: string | undefined;
  terminateSession(): Promise<void>;
}

/**
 * Connects `client` over `transport`, Streamable HTTP of either SDK. `close()` ends the session
 * on the gateway first (a DELETE; its refusal is fine, the session may be gone already), so the
 * gateway lets it go then and not when it expires.
 */
export async function openSession<C extends SessionClient<T>, T extends SessionTransport>(client: C, transport: T): Promise<ClientSession<C>> {
  await client.connect(transport);
  return {
    client,
    sessionId: transport.sessionId,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

export interface ConnectedClient {
  client: Client;
  /** Resolves on the next `notifications/tools/list_changed`. */
  nextToolListChange(): Promise<void>;
  close(): Promise<void>;
}

/** The real SDK client, connected to the gateway over Streamable HTTP (with `headers` on every request, when given). */
export async function connectClient(url: string, name = 'test-client', headers?: Record<string, string>): Promise<ConnectedClient> {
  const client = new Client({ name, version: '1.0.0' });
  let waiters: (() => void)[] = [];
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    const current = waiters;
    waiters = [];
    for (const w of current) w();
  });
  const session = await openSession(client, new StreamableHTTPClientTransport(new URL(url), headers ? { requestInit: { headers } } : undefined));
  return { client, nextToolListChange: () => new Promise<void>((r) => waiters.push(r)), close: session.close };
}

/**
 * The real SDK client with what a test varies: its name, request headers (a credential) and
 * roots (declaring the capability, which also sends its tool calls down the session server's
 * path rather than the plain one).
 */
export async function sdkClient(
  url: string,
  options: { name?: string; headers?: Record<string, string>; roots?: readonly string[] } = {},
): Promise<ClientSession<Client>> {
  const { roots } = options;
  const client = new Client({ name: options.name ?? 'test-client', version: '1.0.0' }, { capabilities: roots ? { roots: {} } : {} });
  if (roots) client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: roots.map((uri) => ({ uri })) }));
  return openSession(client, new StreamableHTTPClientTransport(new URL(url), options.headers ? { requestInit: { headers: options.headers } } : undefined));
}

/**
 * Polls `check` until it returns true or `timeoutMs` passes, stretched by the run's load scale
 * (as the test timeouts are: see vitest.config.ts), since what it waits for runs slower on a busy
 * machine while the test's time limit grows alike.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + scaled(timeoutMs);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The text blocks of a tool result, joined. */
export function textOf(result: object): string {
  const content = ((result as { content?: unknown }).content ?? []) as { type: string; text?: string }[];
  return content.map((c) => c.text ?? '').join('');
}

/** A loopback port free right now (for a server whose URL must be known before it starts). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Real MCP clients from npm against one gateway with two upstreams: the 2025 stdio fixture
 * (`alpha`) and an HTTP server that speaks only 2026-07-28 (`modern`). Each client lists the
 * tools of both and calls one tool on each; a recording proxy between client and gateway
 * keeps what the client sent, so a failure shows the wire, not just the error.
 *
 * Clients that can speak 2026-07-28 are expected to speak it to the gateway (no `initialize`,
 * no `Mcp-Session-Id`, `Mcp-Method`/`Mcp-Name` headers, the `_meta` envelope on every request);
 * 2025-only clients keep their sessions.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startModernOnlyServer, type ModernOnlyServer } from '../fixtures/modern-only-server.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { connectAiSdk } from './clients/ai-sdk.js';
import { inspectorClient } from './clients/inspector-cli.js';
import type { InteropClient } from './clients/interop-client.js';
import { connectOpenAiAgents } from './clients/openai-agents.js';
import { startRecordingProxy, transcript, type Exchange, type RecordingProxy } from './clients/recording-proxy.js';
import { connectSdkV1 } from './clients/sdk-v1.js';
import { connectSdkV2 } from './clients/sdk-v2.js';

/** The stdio fixture's tools (tests/fixtures/demo-tools.ts, stdio-server.ts) under its server name. */
const ALPHA_TOOLS = ['add', 'ask_llm', 'ask_user', 'count', 'crash', 'echo', 'fail', 'list_roots', 'log', 'pid', 'sleep', 'touch', 'work', 'work_status'].map(
  (name) => `alpha__${name}`,
);
const MODERN_TOOLS = ['ask', 'echo'].map((name) => `modern__${name}`);
/** Both upstreams offer `echo`, so the gateway generates a broadcast for it. */
const GENERATED_TOOLS = ['broadcast__echo'];
const ALL_TOOLS = [...ALPHA_TOOLS, ...MODERN_TOOLS, ...GENERATED_TOOLS].sort();
/** The modern fixture's `echo` returns its text as given; alpha's prefixes its label. */
const MODERN_ECHO = 'through the gateway';

const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';
const WIRE_LINES_SHOWN = 12;

interface ClientCase {
  name: string;
  /** The path the client is pointed at on the gateway. */
  path: string;
  connect(url: string): Promise<InteropClient>;
  /** What the client should speak to the gateway: 2026-07-28, 2025-11-25 Streamable HTTP, or the HTTP+SSE transport. */
  speaks: '2026-07-28' | '2025-11-25' | 'http+sse';
}

const CLIENTS: ClientCase[] = [
  {
    name: 'SDK v2 client pinned to 2026-07-28',
    path: '/mcp',
    connect: (url) => connectSdkV2(url, { pin: '2026-07-28' }),
    speaks: '2026-07-28',
  },
  {
    name: 'SDK v2 client in auto mode',
    path: '/mcp',
    connect: (url) => connectSdkV2(url, 'auto'),
    speaks: '2026-07-28',
  },
  {
    name: '@ai-sdk/mcp createMCPClient (http)',
    path: '/mcp',
    connect: connectAiSdk,
    speaks: '2026-07-28',
  },
  {
    name: '@openai/agents MCPServerStreamableHttp',
    path: '/mcp',
    connect: connectOpenAiAgents,
    speaks: '2026-07-28',
  },
  {
    name: 'SDK v1 client (1.32)',
    path: '/mcp',
    connect: connectSdkV1,
    speaks: '2025-11-25',
  },
  {
    name: 'MCP Inspector CLI --transport http',
    path: '/mcp',
    connect: async (url) => inspectorClient(url, 'http'),
    speaks: '2025-11-25',
  },
  {
    name: 'MCP Inspector CLI --transport sse',
    path: '/sse',
    connect: async (url) => inspectorClient(url, 'sse'),
    speaks: 'http+sse',
  },
];

let gateway: RunningGateway;
let modern: ModernOnlyServer;

beforeAll(async () => {
  modern = await startModernOnlyServer();
  gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha'), modern: { url: modern.url } }));
});

afterAll(async () => {
  try {
    await gateway?.stop();
  } finally {
    await modern?.stop();
  }
});

describe.each(CLIENTS)('$name', (client) => {
  let proxy: RecordingProxy;
  let connection: Promise<InteropClient> | undefined;
  /** Connects on first use, inside a test, so a client that cannot connect fails that test (not the hooks). */
  const connected = (): Promise<InteropClient> => (connection ??= client.connect(proxy.urlFor(client.path)));

  beforeAll(async () => {
    proxy = await startRecordingProxy(new URL(gateway.url).origin);
  });

  afterAll(async () => {
    try {
      const open = await connection?.catch(() => undefined);
      await open?.close();
    } finally {
      await proxy?.stop();
    }
  });

  /** A test whose failure also shows the last requests the client sent and what they got. */
  const step = (title: string, body: () => Promise<void>) =>
    it(title, async () => {
      try {
        await body();
      } catch (error) {
        const wire = transcript(proxy.exchanges).split('\n').slice(-WIRE_LINES_SHOWN).join('\n');
        throw new Error(`${(error as Error).message}\n--- wire (last ${WIRE_LINES_SHOWN} requests) ---\n${wire}`, { cause: error });
      }
    });

  step('lists the tools of both upstreams under their server names', async () => {
    const names = await (await connected()).listToolNames();
    expect([...names].sort()).toEqual(ALL_TOOLS);
  });

  step('calls a tool on the 2025 stdio upstream', async () => {
    expect(await (await connected()).callText('alpha__echo', { text: 'through the gateway' })).toBe('alpha: through the gateway');
  });

  step('calls a tool on the 2026-only upstream', async () => {
    expect(await (await connected()).callText('modern__echo', { text: 'through the gateway' })).toBe(MODERN_ECHO);
  });

  if (client.speaks === '2026-07-28') {
    step('speaks 2026-07-28 to the gateway: server/discover, no session, Mcp-Method/Mcp-Name, the _meta envelope', async () => {
      const session = await connected();
      await session.listToolNames();
      await session.callText('alpha__echo', { text: 'wire' });
      const seen = proxy.exchanges.map(modernView);
      expect(seen[0]?.method).toBe('server/discover');
      expect(seen).toEqual(seen.map((one) => asModernShouldBe(one)));
    });
  } else if (client.speaks === '2025-11-25') {
    step('speaks 2025-11-25: initialize, then the session it was given on every request', async () => {
      const session = await connected();
      await session.listToolNames();
      await session.callText('alpha__echo', { text: 'wire' });
      expect(legacyViolations(proxy.exchanges)).toEqual([]);
      expect(proxy.messages()[0]?.method).toBe('initialize');
    });
  } else {
    step('speaks HTTP+SSE: a GET stream that names an endpoint, and every message posted there', async () => {
      const session = await connected();
      await session.listToolNames();
      await session.callText('alpha__echo', { text: 'wire' });
      expect(sseViolations(proxy.exchanges)).toEqual([]);
      expect(proxy.messages()[0]?.method).toBe('initialize');
    });
  }
});

describe('@openai/agents without an API key', () => {
  beforeAll(() => {
    vi.stubEnv('OPENAI_API_KEY', undefined);
  });
  afterAll(() => {
    vi.unstubAllEnvs();
  });

  it('connects, lists and calls with OPENAI_API_KEY unset', async () => {
    const client = await connectOpenAiAgents(gateway.url);
    try {
      expect(await client.listToolNames()).toContain('alpha__echo');
      expect(await client.callText('alpha__echo', { text: 'no key' })).toBe('alpha: no key');
    } finally {
      await client.close();
    }
  });
});

interface ModernView {
  http: string;
  method: string | undefined;
  /** The tool a `tools/call` names. */
  tool: string | undefined;
  status: number;
  headers: { 'mcp-protocol-version'?: string; 'mcp-method'?: string; 'mcp-name'?: string; 'mcp-session-id'?: string };
  envelopeVersion: unknown;
}

/** What one exchange shows of the 2026-07-28 rules. */
function modernView(exchange: Exchange): ModernView {
  const message = exchange.body as { method?: string; params?: { name?: string; _meta?: Record<string, unknown> } } | undefined;
  const header = (name: string) => (typeof exchange.headers[name] === 'string' ? (exchange.headers[name] as string) : undefined);
  return {
    http: exchange.method,
    method: message?.method,
    tool: message?.method === 'tools/call' ? message.params?.name : undefined,
    status: exchange.status,
    headers: {
      'mcp-protocol-version': header('mcp-protocol-version'),
      'mcp-method': header('mcp-method'),
      'mcp-name': header('mcp-name'),
      'mcp-session-id': header('mcp-session-id'),
    },
    envelopeVersion: message?.params?._meta?.[PROTOCOL_VERSION_KEY],
  };
}

/**
 * The same exchange as 2026-07-28 wants it: a POST answered 200, naming the revision in the
 * header and in the envelope, `Mcp-Method` its method, `Mcp-Name` the tool it calls, no session.
 */
function asModernShouldBe(seen: ModernView): ModernView {
  return {
    ...seen,
    http: 'POST',
    status: 200,
    headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': seen.method, 'mcp-name': seen.tool, 'mcp-session-id': undefined },
    envelopeVersion: '2026-07-28',
  };
}

/** Requests of a 2025 client that break its session rules, described; none is expected. */
function legacyViolations(exchanges: readonly Exchange[]): string[] {
  const issued = new Set<string>();
  const problems: string[] = [];
  for (const exchange of exchanges) {
    const message = exchange.body as { method?: string } | undefined;
    const sessionHeader = exchange.headers['mcp-session-id'];
    if (message?.method === 'server/discover') problems.push('sent server/discover');
    if (message?.method === 'initialize') {
      const given = exchange.responseHeaders['mcp-session-id'];
      if (typeof given === 'string') issued.add(given);
      else problems.push(`initialize answered ${exchange.status} without a session`);
      continue;
    }
    if (typeof sessionHeader !== 'string' || !issued.has(sessionHeader)) problems.push(`${exchange.method} ${message?.method ?? ''} without its session`);
    if (exchange.headers['mcp-protocol-version'] !== '2025-11-25') problems.push(`${exchange.method} ${message?.method ?? ''} with MCP-Protocol-Version ${String(exchange.headers['mcp-protocol-version'])}`);
  }
  return problems;
}

/** Requests of an HTTP+SSE client that break that transport's rules, described; none is expected. */
function sseViolations(exchanges: readonly Exchange[]): string[] {
  const endpoints = new Set<string>();
  const problems: string[] = [];
  for (const exchange of exchanges) {
    if (exchange.method === 'GET') {
      const endpoint = /event: endpoint\r?\ndata: (\S+)/.exec(exchange.responseText)?.[1];
      if (exchange.status !== 200 || endpoint === undefined) problems.push(`GET ${exchange.path} answered ${exchange.status} without an endpoint event`);
      else endpoints.add(new URL(endpoint, 'http://gateway').pathname + new URL(endpoint, 'http://gateway').search);
      continue;
    }
    const message = exchange.body as { method?: string } | undefined;
    if (!endpoints.has(exchange.path)) problems.push(`${exchange.method} ${exchange.path} (${message?.method ?? ''}) not to an announced endpoint`);
    if (exchange.status !== 202) problems.push(`${exchange.method} ${exchange.path} (${message?.method ?? ''}) answered ${exchange.status}`);
  }
  return problems;
}

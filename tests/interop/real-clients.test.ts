/**
 * Real MCP clients from npm against one gateway with two upstreams: the 2025 stdio fixture
 * (`alpha`) and an HTTP server that speaks only 2026-07-28 (`modern`). Each client lists the
 * tools of both and calls one tool on each; a recording proxy between client and gateway
 * keeps what the client sent, so a failure shows the wire, not just the error.
 *
 * Clients that can speak 2026-07-28 are expected to speak it to the gateway (no `initialize`,
 * no `Mcp-Session-Id`, `Mcp-Method`/`Mcp-Name` headers, the `_meta` envelope on every request);
 * 2025-only clients keep their sessions.
 *
 * A client that can answer a server's requests also answers one across revisions, for each kind
 * it can answer: a 2026-07-28 client calls a 2025 tool that asks it mid-call (the gateway holds
 * the upstream call and answers `input_required`), and a 2025 client calls a 2026 tool that
 * answers `input_required` (the request reaches it on its session).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startModernOnlyServer, type ModernOnlyServer } from '../fixtures/modern-only-server.js';
import { startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { connectAiSdk } from './clients/ai-sdk.js';
import { inspectorClient } from './clients/inspector-cli.js';
import type { InteropClient, ServerRequestAnswers } from './clients/interop-client.js';
import { connectOpenAiAgents } from './clients/openai-agents.js';
import { startRecordingProxy, transcript, type Exchange, type RecordingProxy } from './clients/recording-proxy.js';
import { connectSdkV1 } from './clients/sdk-v1.js';
import { connectSdkV2 } from './clients/sdk-v2.js';

/** The stdio fixture's tools (tests/fixtures/demo-tools.ts, stdio-server.ts) under its server name. */
const ALPHA_TOOLS = ['add', 'ask_llm', 'ask_user', 'count', 'crash', 'echo', 'fail', 'list_roots', 'log', 'pid', 'sleep', 'touch', 'work', 'work_status'].map(
  (name) => `alpha__${name}`,
);
const MODERN_TOOLS = ['ask', 'echo', 'think'].map((name) => `modern__${name}`);
/** Both upstreams offer `echo`, so the gateway generates a broadcast for it. */
const GENERATED_TOOLS = ['broadcast__echo'];
const ALL_TOOLS = [...ALPHA_TOOLS, ...MODERN_TOOLS, ...GENERATED_TOOLS].sort();
/** The modern fixture's `echo` returns its text as given; alpha's prefixes its label. */
const MODERN_ECHO = 'through the gateway';

const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';
const WIRE_LINES_SHOWN = 12;

type Speaks = '2026-07-28' | '2025-11-25' | 'http+sse';
type AnswerKind = keyof ServerRequestAnswers;

interface ClientCase {
  name: string;
  /** The path the client is pointed at on the gateway. */
  path: string;
  /** Connects; the client declares, and answers, the kinds of server request given in `answers`. */
  connect(url: string, answers?: ServerRequestAnswers): Promise<InteropClient>;
  /** What the client should speak to the gateway: 2026-07-28, 2025-11-25 Streamable HTTP, or the HTTP+SSE transport. */
  speaks: Speaks;
  /** The kinds of server request the client can answer mid-call (its adapter says why not, where it cannot). */
  answers: readonly AnswerKind[];
}

/** A tool whose call asks the client across revisions, and the text it ends with given the client's answer. */
interface CrossRevisionRound {
  /** The tool as the gateway lists it. */
  tool: string;
  args: Record<string, unknown>;
  /** The tool at its server: the 2025 stdio fixture (the gateway pauses its call) or the 2026-only one (it answers `input_required`). */
  upstream: { server: 'alpha' | 'modern'; tool: string };
  /** What the client is shown: the sampling prompt or the elicitation's message. */
  asks: string;
  expected(answer: string): string;
  /** The tool error a client that did not declare the capability gets instead. */
  refused: string;
}

const QUESTION = 'what is seven times six?';

/** A 2026 client calls the 2025 stdio fixture, whose tools push their request mid-call. */
const TO_2025_UPSTREAM: Record<AnswerKind, CrossRevisionRound> = {
  sampling: {
    tool: 'alpha__ask_llm',
    args: { question: QUESTION },
    upstream: { server: 'alpha', tool: 'ask_llm' },
    asks: QUESTION,
    expected: (answer) => `alpha heard: ${answer}`,
    refused: 'the client does not support sampling/createMessage',
  },
  elicitation: {
    tool: 'alpha__ask_user',
    args: {},
    upstream: { server: 'alpha', tool: 'ask_user' },
    asks: 'Your name?',
    expected: (answer) => `alpha: accept ${answer}`,
    refused: 'the client does not support elicitation/create',
  },
};

/** A 2025 client calls the 2026-only fixture, whose tools return `input_required` with their request. */
const TO_2026_UPSTREAM: Record<AnswerKind, CrossRevisionRound> = {
  sampling: {
    tool: 'modern__think',
    args: { question: QUESTION },
    upstream: { server: 'modern', tool: 'think' },
    asks: QUESTION,
    expected: (answer) => `modern heard: ${answer}`,
    refused: 'This tool needs a client that supports sampling; this client did not declare it.',
  },
  elicitation: {
    tool: 'modern__ask',
    args: {},
    upstream: { server: 'modern', tool: 'ask' },
    asks: 'Your answer?',
    expected: (answer) => `${JSON.stringify({ answer })} (state: asked-once)`,
    refused: 'This tool needs a client that supports elicitation; this client did not declare it.',
  },
};

const CROSS_REVISION: Record<Speaks, Record<AnswerKind, CrossRevisionRound>> = {
  '2026-07-28': TO_2025_UPSTREAM,
  '2025-11-25': TO_2026_UPSTREAM,
  'http+sse': TO_2026_UPSTREAM,
};

/** The key under which the gateway hands a paused 2025 call's first request of each kind to a 2026 client. */
const PAUSED_KEY: Record<AnswerKind, string> = { sampling: 'sampling-1', elicitation: 'elicitation-1' };
/** The key the 2026-only fixture asks under, for each kind. */
const MODERN_KEY: Record<AnswerKind, string> = { sampling: 'thought', elicitation: 'answer' };

const CLIENTS: ClientCase[] = [
  {
    name: 'SDK v2 client pinned to 2026-07-28',
    path: '/mcp',
    connect: (url, answers) => connectSdkV2(url, { pin: '2026-07-28' }, answers),
    speaks: '2026-07-28',
    answers: ['sampling', 'elicitation'],
  },
  {
    name: 'SDK v2 client in auto mode',
    path: '/mcp',
    connect: (url, answers) => connectSdkV2(url, 'auto', answers),
    speaks: '2026-07-28',
    answers: ['sampling', 'elicitation'],
  },
  {
    name: 'SDK v2 client in legacy mode',
    path: '/mcp',
    connect: (url, answers) => connectSdkV2(url, 'legacy', answers),
    speaks: '2025-11-25',
    answers: ['sampling', 'elicitation'],
  },
  {
    name: '@ai-sdk/mcp createMCPClient (http)',
    path: '/mcp',
    connect: (url, answers) => connectAiSdk(url, { elicitation: answers?.elicitation }),
    speaks: '2026-07-28',
    // Form elicitation only: it has no sampling handler, and declares no sampling capability.
    answers: ['elicitation'],
  },
  {
    name: '@openai/agents MCPServerStreamableHttp',
    path: '/mcp',
    connect: connectOpenAiAgents,
    speaks: '2026-07-28',
    // It builds its client with no capabilities and no handlers, and offers no option for them.
    answers: [],
  },
  {
    name: 'SDK v1 client (1.32)',
    path: '/mcp',
    connect: connectSdkV1,
    speaks: '2025-11-25',
    answers: ['sampling', 'elicitation'],
  },
  {
    name: 'MCP Inspector CLI --transport http',
    path: '/mcp',
    connect: async (url) => inspectorClient(url, 'http'),
    speaks: '2025-11-25',
    // The CLI's client is built with `sample: false, elicit: false`.
    answers: [],
  },
  {
    name: 'MCP Inspector CLI --transport sse',
    path: '/sse',
    connect: async (url) => inspectorClient(url, 'sse'),
    speaks: 'http+sse',
    answers: [],
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

  for (const kind of client.answers) {
    const round = CROSS_REVISION[client.speaks][kind];
    const across = round.upstream.server === 'alpha' ? 'the 2025 upstream' : 'the 2026-only upstream';
    step(`answers ${kind} across revisions: ${round.tool} on ${across}`, async () => {
      const asked: string[] = [];
      const answer = (shown: string): string => {
        asked.push(shown);
        return `${kind} answer to ${shown}`;
      };
      const from = proxy.exchanges.length;
      const upstreamFrom = modern.received().length;
      // A connection of its own: the other tests' client declares nothing it could be asked.
      const answering = await client.connect(proxy.urlFor(client.path), { [kind]: answer });
      try {
        expect(await answering.callText(round.tool, round.args)).toBe(round.expected(`${kind} answer to ${round.asks}`));
        expect(asked).toEqual([round.asks]);
      } finally {
        await answering.close();
      }
      const exchanges = proxy.exchanges.slice(from);
      const calls = messagesOf(exchanges).filter((m) => m.method === 'tools/call' && m.params?.name === round.tool);
      if (client.speaks === '2026-07-28') {
        // The call, then one retry carrying the answer under the gateway's key and its paused call's state.
        expect(calls.map((m) => Object.keys((m.params?.inputResponses as object | undefined) ?? {}))).toEqual([[], [PAUSED_KEY[kind]]]);
        expect(String(calls[1]?.params?.requestState)).toMatch(/^conflux\.paused\./);
        const seen = exchanges.map(modernView);
        expect(seen).toEqual(seen.map((one) => asModernShouldBe(one)));
      } else {
        // One call; the request reached the client on its session, and its answer went back there.
        expect(calls).toHaveLength(1);
        const answers = exchanges.filter((e) => messagesOf([e]).some((m) => m.method === undefined && m.result !== undefined));
        expect(answers.map((e) => e.status)).toEqual([202]);
        expect(client.speaks === 'http+sse' ? sseViolations(exchanges) : legacyViolations(exchanges)).toEqual([]);
        // The 2026 upstream ran the tool twice: the second time with the answer under its own key.
        const upstreamCalls = modern
          .received()
          .slice(upstreamFrom)
          .filter((m) => m.method === 'tools/call' && m.params?.name === round.upstream.tool);
        expect(upstreamCalls.map((m) => Object.keys((m.params?.inputResponses as object | undefined) ?? {}))).toEqual([[], [MODERN_KEY[kind]]]);
      }
    });
  }

  for (const kind of (['sampling', 'elicitation'] as const).filter((one) => !client.answers.includes(one))) {
    const round = CROSS_REVISION[client.speaks][kind];
    step(`cannot answer ${kind}: ${round.tool} is refused, naming what it lacks`, async () => {
      await expect((await connected()).callText(round.tool, round.args)).rejects.toThrow(round.refused);
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

type RecordedMessage = { method?: string; id?: unknown; result?: unknown; params?: Record<string, unknown> };

/** The JSON-RPC messages of some exchanges, batches flattened. */
function messagesOf(exchanges: readonly Exchange[]): RecordedMessage[] {
  return exchanges.flatMap((e) => (Array.isArray(e.body) ? e.body : e.body !== null && typeof e.body === 'object' ? [e.body] : [])) as RecordedMessage[];
}

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

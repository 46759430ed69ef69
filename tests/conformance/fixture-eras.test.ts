import { Client, StreamableHTTPClientTransport, type ClientCapabilities } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, testConfig, textOf, type RunningGateway } from '../helpers/gateway.js';
import { FIXTURE_V2 } from './conformance-2026-runner.js';
import { startFixture, type RunningFixture } from './conformance-runner.js';

/**
 * The v2 fixture's sampling and elicitation tools are written once, in the 2026 `input_required`
 * style: a 2025 session is asked with real server-to-client requests (the SDK's legacy shim), a
 * 2026-07-28 request with `input_required` rounds. Whichever era a client speaks, and whether it
 * reaches the fixture directly or through Conflux (which speaks 2026-07-28 to it), the same
 * tools give the same results; that is what lets the 2025 conformance run through the gateway
 * be compared with the direct one.
 */
type Era = '2025-11-25' | '2026-07-28';

const CALLS = [
  { name: 'test_sampling', arguments: { prompt: 'Say hello' }, text: 'LLM response: hello from the client' },
  { name: 'test_elicitation', arguments: { message: 'Who are you?' }, text: 'User response: action=accept, content={"username":"ada","email":"ada@example.com"}' },
  { name: 'test_elicitation_sep1034_defaults', arguments: {}, text: 'Elicitation completed: action=accept, content={"username":"ada","email":"ada@example.com"}' },
];

async function connect(url: string, era: Era, capabilities: ClientCapabilities = { sampling: {}, elicitation: {} }): Promise<{ client: Client; asked: string[] }> {
  const client = new Client(
    { name: `fixture-eras-${era}`, version: '1.0.0' },
    {
      capabilities,
      ...(era === '2026-07-28' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
    },
  );
  const asked: string[] = [];
  if (capabilities.sampling) {
    client.setRequestHandler('sampling/createMessage', async () => {
      asked.push('sampling/createMessage');
      return { role: 'assistant', content: { type: 'text', text: 'hello from the client' }, model: 'test-model', stopReason: 'endTurn' };
    });
  }
  if (capabilities.elicitation) {
    client.setRequestHandler('elicitation/create', async () => {
      asked.push('elicitation/create');
      return { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } };
    });
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return { client, asked };
}

describe('the v2 conformance fixture answers alike in both eras, directly and through Conflux', () => {
  let fixture: RunningFixture;
  let gateway: RunningGateway;
  const urls = {} as Record<'directly' | 'through Conflux', string>;

  beforeAll(async () => {
    fixture = await startFixture(FIXTURE_V2);
    gateway = await startGateway(testConfig({ conformance: { url: fixture.url, prefix: '' } }));
    urls.directly = fixture.url;
    urls['through Conflux'] = gateway.url;
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await fixture?.stop();
  });

  it.each([
    ['2025-11-25', 'directly'],
    ['2025-11-25', 'through Conflux'],
    ['2026-07-28', 'directly'],
    ['2026-07-28', 'through Conflux'],
  ] as const)('a %s client %s asks the same questions and gets the same results', async (era, path) => {
    const { client, asked } = await connect(urls[path], era);
    try {
      expect(client.getProtocolEra()).toBe(era === '2026-07-28' ? 'modern' : 'legacy');
      const texts: string[] = [];
      for (const call of CALLS) texts.push(textOf(await client.callTool({ name: call.name, arguments: call.arguments })));
      expect(texts).toEqual(CALLS.map((c) => c.text));
      expect(asked).toEqual(['sampling/createMessage', 'elicitation/create', 'elicitation/create']);
    } finally {
      await client.close();
    }
  });

  it('refuses a client that declared neither sampling nor elicitation, in the idiom of its era', async () => {
    const legacy = await connect(urls.directly, '2025-11-25', {});
    try {
      // The legacy shim checks the capabilities declared at initialize and fails the call as a tool.
      const refused = await legacy.client.callTool({ name: 'test_sampling', arguments: { prompt: 'Say hello' } });
      expect(refused.isError).toBe(true);
    } finally {
      await legacy.client.close();
    }
    const modern = await connect(urls.directly, '2026-07-28', {});
    try {
      await expect(modern.client.callTool({ name: 'test_sampling', arguments: { prompt: 'Say hello' } })).rejects.toMatchObject({ code: -32021 });
    } finally {
      await modern.client.close();
    }
    expect([...legacy.asked, ...modern.asked]).toEqual([]);
  });
});

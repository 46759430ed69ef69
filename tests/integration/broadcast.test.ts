import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeInputSchemas } from '../../src/catalog/generated-tools.js';
import { startStreamableUpstream, type RunningUpstream } from '../fixtures/http-servers.js';
import { connectClient, isAlive, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

interface BroadcastOutcome {
  results: Record<string, { content: { text: string }[] }>;
  errors: Record<string, string>;
  total: number;
  succeeded: number;
  failed: number;
  durationMs: number;
}

describe('broadcast and by-tag tools over real upstreams', () => {
  let web: RunningUpstream;
  let gateway: RunningGateway;

  beforeAll(async () => {
    web = await startStreamableUpstream('gamma', { extraTools: ['only_gamma'] });
    gateway = await startGateway(
      testConfig({
        alpha: stdioFixture('alpha', { tags: ['red'], timeout: 1, tools: { deny: ['fail'] } }),
        beta: stdioFixture('beta', {
          tags: ['red', 'blue'],
          timeout: 10,
          tools: { overrides: { add: { name: 'beta_sum', title: 'Sum (beta)', description: 'Adds, on beta', annotations: { idempotentHint: true } } } },
        }),
        gamma: { url: web.url, tags: ['blue'], timeout: 10 },
      }),
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    await web?.close();
  });

  it('generates broadcast__<tool> for shared tools and broadcast__by_tag__<tag> per tag', async () => {
    const { client, close } = await connectClient(gateway.url);
    const tools = (await client.listTools()).tools;
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['broadcast__echo', 'broadcast__add', 'broadcast__by_tag__red', 'broadcast__by_tag__blue']));
    expect(names).not.toContain('broadcast__only_gamma'); // offered by one server only
    expect(names).not.toContain('conflux__search_tools'); // listed only with exposure: search
    const echo = tools.find((t) => t.name === 'broadcast__echo')!;
    expect(echo.inputSchema).toMatchObject({
      type: 'object',
      properties: { text: { type: 'string' }, servers: { type: 'array', items: { enum: ['alpha', 'beta', 'gamma'] } }, tags: { type: 'array' } },
      required: ['text'],
    });
    await close();
  });

  it('runs a broadcast on every server and labels each result', async () => {
    const { client, close } = await connectClient(gateway.url);
    const result = await client.callTool({ name: 'broadcast__echo', arguments: { text: 'hi' } });
    expect(result.isError).toBeUndefined();
    const outcome = result.structuredContent as unknown as BroadcastOutcome;
    expect(outcome).toMatchObject({ total: 3, succeeded: 3, failed: 0, errors: {} });
    expect(Object.keys(outcome.results).sort()).toEqual(['alpha', 'beta', 'gamma']);
    expect(outcome.results.gamma!.content[0]!.text).toBe('gamma: hi');
    const texts = (result.content as { text: string }[]).map((c) => c.text);
    expect(texts[0]).toBe('ran "echo" on 3/3 servers');
    expect(texts).toEqual(expect.arrayContaining(['[alpha] alpha: hi', '[beta] beta: hi', '[gamma] gamma: hi']));
    await close();
  });

  it('narrows by servers and by tags', async () => {
    const { client, close } = await connectClient(gateway.url);
    const byServer = (await client.callTool({ name: 'broadcast__echo', arguments: { text: 'x', servers: ['gamma', 'alpha'] } })).structuredContent as unknown as BroadcastOutcome;
    expect(Object.keys(byServer.results).sort()).toEqual(['alpha', 'gamma']);
    const byTag = (await client.callTool({ name: 'broadcast__echo', arguments: { text: 'x', tags: ['blue'] } })).structuredContent as unknown as BroadcastOutcome;
    expect(Object.keys(byTag.results).sort()).toEqual(['beta', 'gamma']);
    const none = await client.callTool({ name: 'broadcast__echo', arguments: { text: 'x', servers: ['nobody'] } });
    expect(none.isError).toBe(true);
    expect(textOf(none)).toMatch(/^no server matches/);
    await close();
  });

  it('times out a hanging server while the others return', async () => {
    const { client, close } = await connectClient(gateway.url);
    const result = await client.callTool({ name: 'broadcast__sleep', arguments: { ms: 1500 } });
    const outcome = result.structuredContent as unknown as BroadcastOutcome;
    expect(result.isError).toBeUndefined();
    expect(outcome).toMatchObject({ total: 3, succeeded: 2, failed: 1 });
    // alpha's own 1 s timeout answered for it; the others' answers came back whole.
    expect(outcome.errors).toEqual({ alpha: 'upstream "alpha" did not answer tools/call within 1s' });
    expect(Object.keys(outcome.results).sort()).toEqual(['beta', 'gamma']);
    expect(outcome.results.beta!.content[0]!.text).toBe('beta slept 1500');
    expect(outcome.results.gamma!.content[0]!.text).toBe('gamma slept 1500');
    await close();
  });

  it('runs a tool on every server with a tag, and explains when none has it', async () => {
    const { client, close } = await connectClient(gateway.url);
    const red = (await client.callTool({ name: 'broadcast__by_tag__red', arguments: { tool: 'echo', arguments: { text: 'r' } } }))
      .structuredContent as unknown as BroadcastOutcome;
    expect(Object.keys(red.results).sort()).toEqual(['alpha', 'beta']);
    const blue = (await client.callTool({ name: 'broadcast__by_tag__blue', arguments: { tool: 'only_gamma' } })).structuredContent as unknown as BroadcastOutcome;
    expect(Object.keys(blue.results)).toEqual(['gamma']);
    const missing = await client.callTool({ name: 'broadcast__by_tag__red', arguments: { tool: 'only_gamma' } });
    expect(missing.isError).toBe(true);
    const text = textOf(missing);
    expect(text).toMatch(/^no server tagged "red" offers "only_gamma". Tagged servers and their tools: alpha: [^;]*\becho\b[^;]*; beta: .*\becho\b/);
    expect(text.split('; ')[0]).not.toMatch(/\bfail\b/); // alpha's hidden tool is not offered
    await expect(client.callTool({ name: 'broadcast__by_tag__red', arguments: { tool: 42 } })).rejects.toMatchObject({ code: -32602 });
    await close();
  });

  it('hides and refuses filtered tools, and shows overrides', async () => {
    const { client, close } = await connectClient(gateway.url);
    const tools = (await client.listTools()).tools;
    const names = tools.map((t) => t.name);
    expect(names).not.toContain('alpha__fail');
    await expect(client.callTool({ name: 'alpha__fail', arguments: {} })).rejects.toMatchObject({ code: -32602 });
    const fail = (await client.callTool({ name: 'broadcast__fail', arguments: {} })).structuredContent as unknown as BroadcastOutcome;
    expect(fail.total).toBe(2); // alpha's fail is hidden, so it is not broadcast to either
    const sum = tools.find((t) => t.name === 'beta_sum')!;
    expect(sum).toMatchObject({ title: 'Sum (beta)', description: 'Adds, on beta', annotations: { readOnlyHint: true, idempotentHint: true } });
    expect(names).not.toContain('beta__add');
    expect((await client.callTool({ name: 'beta_sum', arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 });
    await close();
  });

  it('searches the catalog and calls what it found', async () => {
    const { client, close } = await connectClient(gateway.url);
    const found = await client.callTool({ name: 'conflux__search_tools', arguments: { query: 'adds numbers', limit: 3 } });
    const hits = (found.structuredContent as { tools: { name: string; inputSchema: object }[] }).tools;
    expect(hits[0]!.name).toMatch(/^(alpha__add|beta_sum|gamma__add)$/);
    expect(hits[0]!.inputSchema).toMatchObject({ properties: { a: { type: 'number' } } });
    const called = await client.callTool({ name: 'conflux__call_tool', arguments: { name: 'gamma__add', arguments: { a: 20, b: 22 } } });
    expect(called.structuredContent).toEqual({ sum: 42 });
    await close();
  });

  it('reports a killed upstream in errors while the others succeed', async () => {
    const { client, close } = await connectClient(gateway.url);
    const pid = gateway.conflux.upstreams.get('beta')!.status().pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !isAlive(pid) && gateway.conflux.upstreams.get('beta')!.state !== 'ready', 5000, 'beta to go down');
    const outcome = (await client.callTool({ name: 'broadcast__echo', arguments: { text: 'y' } })).structuredContent as unknown as BroadcastOutcome;
    expect(outcome).toMatchObject({ total: 3, succeeded: 2, failed: 1 });
    expect(outcome.errors.beta).toMatch(/^upstream "beta" is unavailable: process killed by SIGKILL/);
    await close();
  });
});

describe('exposure: search', () => {
  it('lists only the meta-tools and broadcasts, and everything stays callable', async () => {
    const gateway = await startGateway(testConfig({ one: stdioFixture('one'), two: stdioFixture('two') }, { exposure: 'search' }));
    try {
      const { client, close } = await connectClient(gateway.url);
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('conflux__search_tools');
      expect(names).toContain('conflux__call_tool');
      expect(names).toContain('broadcast__echo');
      expect(names.filter((n) => n.startsWith('one__') || n.startsWith('two__'))).toEqual([]);
      const viaMeta = await client.callTool({ name: 'conflux__call_tool', arguments: { name: 'two__echo', arguments: { text: 'meta' } } });
      expect(textOf(viaMeta)).toBe('two: meta');
      expect(textOf(await client.callTool({ name: 'one__echo', arguments: { text: 'direct' } }))).toBe('one: direct');
      await expect(client.callTool({ name: 'conflux__call_tool', arguments: { name: 'conflux__call_tool' } })).rejects.toMatchObject({ code: -32602 });
      await close();
    } finally {
      await gateway.stop();
    }
  });
});

describe('mergeInputSchemas', () => {
  it('unions properties, intersects required, and keeps differing definitions as anyOf', () => {
    const merged = mergeInputSchemas([
      { type: 'object', properties: { q: { type: 'string' }, n: { type: 'number' } }, required: ['q', 'n'] },
      { type: 'object', properties: { q: { type: 'string' }, n: { type: 'integer' }, lang: { type: 'string' } }, required: ['q'] },
    ]);
    expect(merged).toEqual({
      type: 'object',
      properties: { q: { type: 'string' }, n: { anyOf: [{ type: 'number' }, { type: 'integer' }] }, lang: { type: 'string' } },
      required: ['q'],
    });
  });
});

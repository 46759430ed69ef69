import type { CallToolResult } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDeniedError, accessFor, fullAccess, rulesFromSettings, type Access } from '../../src/auth/access-policy.js';
import { ANONYMOUS, type Principal } from '../../src/auth/principal.js';
import { AccessSettingsSchema } from '../../src/config/schema.js';
import { broadcast, type BroadcastPart } from '../../src/gateway/broadcast.js';
import { HiddenToolError } from '../../src/gateway/error-mapping.js';
import { detachedCall } from '../../src/gateway/forward.js';
import { broadcastTargets, callBroadcast, callTool } from '../../src/gateway/tool-calls.js';
import { stdioFixture, testConfig } from '../helpers/gateway.js';
import { startLoggedGateway, type LoggedGateway } from '../helpers/logged-gateway.js';

/**
 * `broadcast__<tool>` (and its REST and by-tag forms): one tool run on every server that offers
 * it and that the caller may call, each answer labelled by server, failures listed rather than
 * thrown. Real stdio upstreams; `gamma` gives up after half a second, for a partial failure.
 */
const user = (id: string): Principal => ({ id, subject: id, email: id, groups: [], roles: [], scopes: [], method: 'jwt' });
const settings = AccessSettingsSchema.parse({
  grants: [
    { user: 'dave@example.com', servers: ['alpha', 'gamma'], level: 'call' },
    { user: 'dave@example.com', servers: ['beta'], level: 'read' },
  ],
});
const rules = rulesFromSettings(settings);
/** Calls alpha and gamma, only lists beta. */
const dave: Access = accessFor(user('dave@example.com'), rules, settings);
/** Sees nothing. */
const erin: Access = accessFor(user('erin@example.com'), rules, settings);
const admin: Access = fullAccess(ANONYMOUS);

interface Summary {
  results: Record<string, CallToolResult>;
  errors: Record<string, string>;
  total: number;
  succeeded: number;
  failed: number;
}
const summaryOf = (result: CallToolResult) => result.structuredContent as unknown as Summary;
const textsOf = (result: CallToolResult) => result.content.map((block) => (block.type === 'text' ? block.text : `<${block.type}>`));

describe('broadcast', () => {
  let gateway: LoggedGateway;

  beforeAll(async () => {
    gateway = await startLoggedGateway(
      testConfig({
        alpha: stdioFixture('alpha', { tags: ['team'] }),
        beta: stdioFixture('beta', { tags: ['team'] }),
        gamma: stdioFixture('gamma', { timeout: 0.5 }),
      }),
    );
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  const call = (name: string, args: Record<string, unknown>, access: Access = admin) =>
    callTool(gateway.conflux.toolCalls, { name, arguments: args }, detachedCall('rest', access));
  async function audited<T>(run: () => Promise<T>): Promise<{ value: T; rows: ReturnType<LoggedGateway['auditRows']> }> {
    const from = gateway.auditRows().length;
    const value = await run();
    return { value, rows: gateway.auditRows().slice(from) };
  }

  it('runs the tool on every server that offers it, labels each answer, and audits each part', async () => {
    const { value: result, rows } = await audited(() => call('broadcast__echo', { text: 'all' }));
    expect(result.isError).toBeUndefined();
    expect(textsOf(result)).toEqual(['ran "echo" on 3/3 servers', '[alpha] alpha: all', '[beta] beta: all', '[gamma] gamma: all']);
    expect(summaryOf(result)).toMatchObject({ total: 3, succeeded: 3, failed: 0, errors: {} });
    expect(Object.keys(summaryOf(result).results)).toEqual(['alpha', 'beta', 'gamma']);
    // One row per server (in the order the parts ended), then the broadcast's own, all under its name.
    const own = rows.at(-1)!;
    expect([own.target, own.server, own.status]).toEqual(['broadcast__echo', undefined, 'ok']);
    expect(rows.slice(0, -1).map((row) => [row.target, row.server, row.status]).sort()).toEqual([
      ['broadcast__echo', 'alpha', 'ok'],
      ['broadcast__echo', 'beta', 'ok'],
      ['broadcast__echo', 'gamma', 'ok'],
    ]);
    expect(rows.map((row) => row.arguments)).toEqual([{ text: 'all' }, { text: 'all' }, { text: 'all' }, { text: 'all' }]);
  });

  it('lists the servers that failed beside those that answered, and fails only when all did', async () => {
    const partial = await call('broadcast__sleep', { ms: 1000 });
    expect(partial.isError).toBeUndefined();
    expect(summaryOf(partial)).toMatchObject({ total: 3, succeeded: 2, failed: 1, errors: { gamma: 'upstream "gamma" did not answer tools/call within 0.5s' } });
    expect(textsOf(partial)).toEqual([
      'ran "sleep" on 2/3 servers; failed on gamma',
      '[alpha] alpha slept 1000',
      '[beta] beta slept 1000',
      '[gamma] failed: upstream "gamma" did not answer tools/call within 0.5s',
    ]);

    const failed = await call('broadcast__fail', {});
    expect(failed.isError).toBe(true);
    expect(summaryOf(failed)).toMatchObject({
      total: 3,
      succeeded: 0,
      failed: 3,
      errors: { alpha: 'alpha failed on purpose', beta: 'beta failed on purpose', gamma: 'gamma failed on purpose' },
    });
  });

  it('narrows to the servers and tags asked for', async () => {
    const named = await call('broadcast__echo', { text: 'one', servers: ['beta'] });
    expect(textsOf(named)).toEqual(['ran "echo" on 1/1 servers', '[beta] beta: one']);
    const tagged = await call('broadcast__echo', { text: 'team', tags: ['team'] });
    expect(Object.keys(summaryOf(tagged).results)).toEqual(['alpha', 'beta']);
    const byTag = await call('broadcast__by_tag__team', { tool: 'echo', arguments: { text: 'tag' } });
    expect(textsOf(byTag)).toEqual(['ran "echo" on 2/2 servers', '[alpha] alpha: tag', '[beta] beta: tag']);
    const none = await call('broadcast__echo', { text: 'x', servers: ['nowhere'] });
    expect(none).toEqual({ isError: true, content: [{ type: 'text', text: 'no server matches: "echo" is offered by alpha, beta, gamma' }] });
  });

  it('reaches only the servers the caller may call', async () => {
    const { value: result, rows } = await audited(() => call('broadcast__echo', { text: 'mine' }, dave));
    expect(textsOf(result)).toEqual(['ran "echo" on 2/2 servers', '[alpha] alpha: mine', '[gamma] gamma: mine']);
    expect(rows.map((row) => [row.principal, row.server ?? '(broadcast)', row.status]).sort()).toEqual([
      ['dave@example.com', '(broadcast)', 'ok'],
      ['dave@example.com', 'alpha', 'ok'],
      ['dave@example.com', 'gamma', 'ok'],
    ]);
    // The tool as the caller lists it spans only the servers it may call: one it may only list is no match.
    expect(await call('broadcast__echo', { text: 'x', servers: ['beta'] }, dave)).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'no server matches: "echo" is offered by alpha, gamma' }],
    });
    // Asked for by the upstream name (REST), such a server is refused by name.
    await expect(callBroadcast(gateway.conflux.toolCalls, { tool: 'echo', servers: ['beta'] }, detachedCall('rest', dave))).rejects.toThrow(
      new AccessDeniedError('Access denied: you may not call "echo" on beta'),
    );
    const rest = await callBroadcast(gateway.conflux.toolCalls, { tool: 'echo', arguments: { text: 'rest' } }, detachedCall('rest', dave));
    expect(textsOf(rest)).toEqual(['ran "echo" on 2/2 servers', '[alpha] alpha: rest', '[gamma] gamma: rest']);
    // A caller who sees none of the servers does not learn that the broadcast exists.
    await expect(call('broadcast__echo', { text: 'x' }, erin)).rejects.toBeInstanceOf(HiddenToolError);
  });

  it('serves the REST form alike: targets before access levels, and audit rows under the broadcast name', async () => {
    const deps = gateway.conflux.toolCalls;
    expect(broadcastTargets(deps, { tool: 'echo' }, detachedCall('rest', dave))).toEqual(['alpha', 'beta', 'gamma']);
    expect(broadcastTargets(deps, { tool: 'echo', tags: ['team'] }, detachedCall('rest', admin))).toEqual(['alpha', 'beta']);
    expect(broadcastTargets(deps, { tool: 'echo' }, detachedCall('rest', erin))).toEqual([]);
    const { value: result, rows } = await audited(() => callBroadcast(deps, { tool: 'echo', arguments: { text: 'rest' }, servers: ['alpha', 'gamma'] }, detachedCall('rest', admin)));
    expect(textsOf(result)).toEqual(['ran "echo" on 2/2 servers', '[alpha] alpha: rest', '[gamma] gamma: rest']);
    const own = rows.filter((row) => row.server === undefined);
    expect(own).toEqual([expect.objectContaining({ target: 'broadcast__echo', arguments: { text: 'rest', servers: ['alpha', 'gamma'] }, status: 'ok' })]);
    expect(rows.filter((row) => row.server !== undefined).map((row) => row.server).sort()).toEqual(['alpha', 'gamma']);
  });

  it('reports each part as it ends, a server that is not configured as a failed part', async () => {
    const parts: BroadcastPart[] = [];
    const result = await broadcast(gateway.conflux.toolCalls, 'echo', ['alpha', 'ghost'], { text: 'direct' }, detachedCall('rest', admin), (part) => parts.push(part));
    expect(summaryOf(result)).toMatchObject({ total: 2, succeeded: 1, failed: 1, errors: { ghost: 'upstream "ghost" is unavailable: it is not configured' } });
    expect(parts.map(({ server, status, error, refused }) => ({ server, status, error, refused })).sort((a, b) => a.server.localeCompare(b.server))).toEqual([
      { server: 'alpha', status: 'ok', error: undefined, refused: false },
      { server: 'ghost', status: 'error', error: 'upstream "ghost" is unavailable: it is not configured', refused: false },
    ]);
  });
});

describe('broadcast under per-server rate limits', () => {
  let gateway: LoggedGateway;

  beforeAll(async () => {
    gateway = await startLoggedGateway(
      testConfig({ alpha: stdioFixture('alpha'), beta: stdioFixture('beta') }, { rateLimit: { perServer: 1, windowSeconds: 600 } }),
    );
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('marks a part its server refused as refused, and the broadcast failed only when every part was', async () => {
    const deps = gateway.conflux.toolCalls;
    const call = detachedCall('rest', admin);
    // Spends alpha's one call of the window.
    expect(await callTool(deps, { name: 'alpha__echo', arguments: { text: 'first' } }, call)).toEqual({ content: [{ type: 'text', text: 'alpha: first' }] });
    const parts: BroadcastPart[] = [];
    const partial = await broadcast(deps, 'echo', ['alpha', 'beta'], { text: 'x' }, call, (part) => parts.push(part));
    expect(partial.isError).toBeUndefined();
    expect(summaryOf(partial)).toMatchObject({ succeeded: 1, failed: 1, errors: { alpha: expect.stringMatching(/^rate limit exceeded for server "alpha"/) } });
    expect(parts.map(({ server, status, refused }) => ({ server, status, refused })).sort((a, b) => a.server.localeCompare(b.server))).toEqual([
      { server: 'alpha', status: 'error', refused: true },
      { server: 'beta', status: 'ok', refused: false },
    ]);
    const refused = await broadcast(deps, 'echo', ['alpha', 'beta'], { text: 'y' }, call);
    expect(refused.isError).toBe(true);
    expect(Object.keys(summaryOf(refused).errors)).toEqual(['alpha', 'beta']);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDeniedError, accessFor, fullAccess, rulesFromSettings, type Access } from '../../src/auth/access-policy.js';
import { ANONYMOUS, type Principal } from '../../src/auth/principal.js';
import { AccessSettingsSchema } from '../../src/config/schema.js';
import { asMcpError, HiddenToolError, UnknownToolError } from '../../src/gateway/error-mapping.js';
import { detachedCall } from '../../src/gateway/forward.js';
import { callTool, UNROUTED_TOOL_LABEL } from '../../src/gateway/tool-calls.js';
import { silentLogger } from '../../src/observability/logger.js';
import { stdioFixture, testConfig } from '../helpers/gateway.js';
import { startLoggedGateway, type LoggedGateway } from '../helpers/logged-gateway.js';

/**
 * `callTool`, the routing every surface shares, on the dependencies the gateway builds once
 * (`conflux.toolCalls`), against real stdio upstreams: what it answers, what it audits and
 * what it counts.
 */
const user = (id: string): Principal => ({ id, subject: id, email: id, groups: [], roles: [], scopes: [], method: 'jwt' });
const settings = AccessSettingsSchema.parse({
  grants: [
    { user: 'carol@example.com', servers: ['alpha'], level: 'call' },
    { user: 'carol@example.com', servers: ['beta'], level: 'read' },
  ],
});
/** Calls alpha, only lists beta, does not see slow. */
const carol: Access = accessFor(user('carol@example.com'), rulesFromSettings(settings), settings);
const admin: Access = fullAccess(ANONYMOUS);

describe('tool calls', () => {
  let gateway: LoggedGateway;

  beforeAll(async () => {
    gateway = await startLoggedGateway(testConfig({ alpha: stdioFixture('alpha'), beta: stdioFixture('beta'), slow: stdioFixture('slow', { timeout: 0.5 }) }));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  const call = (name: string, args: Record<string, unknown>, access: Access = admin, options: Parameters<typeof callTool>[3] = {}) =>
    callTool(gateway.conflux.toolCalls, { name, arguments: args }, detachedCall('rest', access), options);
  /** What `run` audited. */
  async function audited(run: () => Promise<unknown>) {
    const from = gateway.auditRows().length;
    await run();
    return gateway.auditRows().slice(from);
  }
  async function executions(tool: string, status: 'ok' | 'error' | 'denied'): Promise<number> {
    const { values } = await gateway.conflux.metrics.toolExecutions.get();
    return values.find((v) => v.labels.tool_id === tool && v.labels.status === status)?.value ?? 0;
  }

  it('routes a call to its upstream by name, and counts and audits it once', async () => {
    const before = await executions('alpha__echo', 'ok');
    let result: unknown;
    const rows = await audited(async () => (result = await call('alpha__echo', { text: 'hi' })));
    expect(result).toEqual({ content: [{ type: 'text', text: 'alpha: hi' }] });
    expect(rows).toEqual([
      expect.objectContaining({ kind: 'tool_call', principal: 'anonymous', channel: 'rest', server: 'alpha', target: 'alpha__echo', arguments: { text: 'hi' }, status: 'ok' }),
    ]);
    expect(await executions('alpha__echo', 'ok')).toBe(before + 1);
  });

  it('answers a tool error as a result, audited with its text', async () => {
    let result: unknown;
    const rows = await audited(async () => (result = await call('alpha__fail', {})));
    expect(result).toEqual({ isError: true, content: [{ type: 'text', text: 'alpha failed on purpose' }] });
    expect(rows).toEqual([expect.objectContaining({ server: 'alpha', target: 'alpha__fail', status: 'error', error: 'alpha failed on purpose' })]);
  });

  it('answers a name the caller cannot see as unknown, audits it as denied and counts it under one label', async () => {
    const unrouted = await executions(UNROUTED_TOOL_LABEL, 'error');
    let unknown: unknown;
    let hidden: unknown;
    const rows = await audited(async () => {
      unknown = await call('nope__missing', {}).catch((error: unknown) => error);
      hidden = await call('slow__echo', { text: 'x' }, carol).catch((error: unknown) => error);
    });
    expect(unknown).toBeInstanceOf(UnknownToolError);
    expect(hidden).toBeInstanceOf(HiddenToolError);
    // On the wire the two are the same answer.
    const wire = (error: unknown) => {
      const { code, message } = asMcpError(error, silentLogger());
      return { code, message: message.replace(/"[^"]+"/, '"<name>"') };
    };
    expect(wire(hidden)).toEqual(wire(unknown));
    expect(wire(hidden).code).toBe(-32602);
    expect(rows).toEqual([
      expect.objectContaining({ target: 'nope__missing', status: 'error' }),
      expect.objectContaining({ target: 'slow__echo', principal: 'carol@example.com', status: 'denied' }),
    ]);
    // Neither reached a server.
    expect(rows.map((row) => row.server)).toEqual([undefined, undefined]);
    expect(await executions(UNROUTED_TOOL_LABEL, 'error')).toBe(unrouted + 2);
    expect(await executions('slow__echo', 'denied')).toBe(0);
  });

  it('refuses a tool the caller may list but not call', async () => {
    const before = await executions('beta__echo', 'denied');
    let refused: unknown;
    const rows = await audited(async () => (refused = await call('beta__echo', { text: 'x' }, carol).catch((error: unknown) => error)));
    expect(refused).toBeInstanceOf(AccessDeniedError);
    expect((refused as Error).message).toBe('Access denied: you may list "beta__echo" but not call it');
    expect(rows).toEqual([expect.objectContaining({ target: 'beta__echo', server: 'beta', status: 'denied' })]);
    expect(await executions('beta__echo', 'denied')).toBe(before + 1);
    expect(await call('alpha__echo', { text: 'allowed' }, carol)).toEqual({ content: [{ type: 'text', text: 'alpha: allowed' }] });
  });

  it('answers an upstream fault as a tool error, or throws it when the surface maps faults itself', async () => {
    const timedOut = 'upstream "slow" did not answer tools/call within 0.5s';
    expect(await call('slow__sleep', { ms: 5000 })).toEqual({ isError: true, content: [{ type: 'text', text: timedOut }] });
    await expect(call('slow__sleep', { ms: 5000 }, admin, { faults: 'throw' })).rejects.toThrow(timedOut);
  });

  it('checks the arguments of a generated tool before anything runs, and filters its answer by access', async () => {
    let refused: unknown;
    const rows = await audited(async () => (refused = await call('conflux__search_tools', {}).catch((error: unknown) => error)));
    expect(refused).toMatchObject({ code: -32602, message: expect.stringMatching(/Invalid arguments for conflux__search_tools: query: /) });
    expect(rows).toEqual([expect.objectContaining({ target: 'conflux__search_tools', status: 'error' })]);
    const found = await call('conflux__search_tools', { query: 'echo', limit: 50 }, carol);
    const names = (found.structuredContent as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(names).toContain('alpha__echo');
    expect(names).toContain('beta__echo');
    expect(names.filter((name) => name.startsWith('slow__'))).toEqual([]);
  });

  it("serves the CLI's calls with the same dependencies", async () => {
    let result: unknown;
    const rows = await audited(async () => (result = await gateway.conflux.callTool({ name: 'beta__echo', arguments: { text: 'cli' } })));
    expect(result).toEqual({ content: [{ type: 'text', text: 'beta: cli' }] });
    expect(rows).toEqual([expect.objectContaining({ channel: 'cli', server: 'beta', target: 'beta__echo', status: 'ok' })]);
  });
});

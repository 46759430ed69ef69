import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STORED_DEPTH } from '../../src/observability/audit-arguments.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, textOf, type RunningGateway } from '../helpers/gateway.js';

interface AuditRow {
  id: number;
  kind: string;
  principal: string;
  channel: string;
  server?: string;
  target: string;
  arguments?: unknown;
  status: string;
  error?: string;
  sessionId?: string;
  durationMs?: number;
}

const MAX_ARGUMENT_BYTES = 4096;
const MAX_REFUSED_PER_MINUTE = 5;

/**
 * The audit trail as an auditor relies on it: every way of calling a tool leaves the same
 * rows, no argument can stop a row from being written or make it huge, refusals cannot flood
 * the table, and admin changes never store the secrets they set.
 */
describe('an audit trail that can be trusted', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;
  let base: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    database = await freshPglite().open();
    await database.migrate();
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha', { tags: ['red'] }), beta: stdioFixture('beta', { tags: ['red'] }) },
        {
          auth: { jwt: { secret: JWT_SECRET } },
          access: {
            grants: [
              { user: 'carol@example.com', servers: ['alpha'], level: 'read' },
              { user: 'dave@example.com', servers: ['alpha'], level: 'call' },
            ],
          },
          audit: { maxArgumentBytes: MAX_ARGUMENT_BYTES, maxRefusedPerMinute: MAX_REFUSED_PER_MINUTE },
          // Deep bodies reach the call (the edge's own depth limit is not under test here).
          limits: { maxJsonDepth: 10_000 },
          api: { allowStdio: true },
        },
      ),
      { database },
    );
    base = gateway.url.replace(/\/mcp$/, '');
    tokens.admin = await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] });
    tokens.carol = await hs256Token({ sub: 'u-carol', email: 'carol@example.com' });
    tokens.dave = await hs256Token({ sub: 'u-dave', email: 'dave@example.com' });
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  const rest = (who: string, method: string, path: string, body?: unknown) =>
    fetch(`${base}/api/v1${path}`, {
      method,
      headers: { ...bearer(tokens[who]!), 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  const auditRows = async (query: string): Promise<AuditRow[]> => {
    const response = await rest('admin', 'GET', `/audit?limit=1000&${query}`);
    expect(response.status).toBe(200);
    return ((await response.json()) as { events: AuditRow[] }).events;
  };
  /** A row as compared across channels: who and when are left out. */
  const shape = ({ kind, server, target, arguments: args, status, error }: AuditRow) => ({ kind, server, target, arguments: args, status, error });
  const executions = async (tool: string) =>
    (await gateway.conflux.metrics.toolExecutions.get()).values.filter((v) => v.labels.tool_id === tool).reduce((sum, v) => sum + v.value, 0);

  it('audits and counts a REST broadcast exactly as the MCP broadcast tool', async () => {
    const before = await executions('broadcast__echo');
    const { client, close } = await clientWithHeaders(gateway.url, bearer(tokens.admin!));
    try {
      const result = await client.callTool({ name: 'broadcast__echo', arguments: { text: 'same', servers: ['alpha', 'beta'] } });
      expect(result.isError).toBeUndefined();
    } finally {
      await close();
    }
    const response = await rest('admin', 'POST', '/broadcast', { tool: 'echo', arguments: { text: 'same' }, servers: ['alpha', 'beta'] });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { structuredContent: { succeeded: number } }).structuredContent.succeeded).toBe(2);

    const rows = await auditRows('tool=broadcast__echo');
    const mcp = rows.filter((r) => r.channel === 'mcp').map(shape);
    const viaRest = rows.filter((r) => r.channel === 'rest').map(shape);
    const byServer = (a: { server?: string }, b: { server?: string }) => (a.server ?? '').localeCompare(b.server ?? '');
    expect(mcp.sort(byServer)).toEqual([
      { kind: 'tool_call', server: undefined, target: 'broadcast__echo', arguments: { text: 'same', servers: ['alpha', 'beta'] }, status: 'ok', error: undefined },
      { kind: 'tool_call', server: 'alpha', target: 'broadcast__echo', arguments: { text: 'same' }, status: 'ok', error: undefined },
      { kind: 'tool_call', server: 'beta', target: 'broadcast__echo', arguments: { text: 'same' }, status: 'ok', error: undefined },
    ]);
    expect(viaRest.sort(byServer)).toEqual(mcp);
    expect(rows.every((r) => r.principal === 'root@example.com')).toBe(true);
    expect(await executions('broadcast__echo')).toBe(before + 2);
    // Each upstream a broadcast reached is found by that server.
    expect((await auditRows('server=beta&tool=broadcast__echo')).map((r) => r.channel).sort()).toEqual(['mcp', 'rest']);
  });

  it('audits a refused REST broadcast as denied', async () => {
    const response = await rest('carol', 'POST', '/broadcast', { tool: 'echo', arguments: { text: 'nope' } });
    expect(response.status).toBe(403);
    const [row] = (await auditRows('tool=broadcast__echo&status=denied')).filter((r) => r.principal === 'carol@example.com');
    expect(row).toMatchObject({ channel: 'rest', arguments: { text: 'nope' } });
  });

  it('audits calls made with the CLI (channel cli)', async () => {
    const result = await gateway.conflux.callTool({ name: 'alpha__echo', arguments: { text: 'from the cli' } });
    expect(textOf(result)).toBe('alpha: from the cli');
    const rows = (await auditRows('tool=alpha__echo')).filter((r) => r.channel === 'cli');
    expect(rows.map(shape)).toEqual([
      { kind: 'tool_call', server: 'alpha', target: 'alpha__echo', arguments: { text: 'from the cli' }, status: 'ok', error: undefined },
    ]);
    expect(rows[0]!.principal).toBe('anonymous');
  });

  it('answers a call with a 3,000-level argument and writes its row, cut at the depth limit', async () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 3000; i++) deep = { a: deep };
    const response = await rest('admin', 'POST', '/tools/alpha__echo/call', { text: 'deep marker', deep });
    expect(response.status).toBe(200);
    expect(textOf(((await response.json()) as { result: object }).result)).toBe('alpha: deep marker');

    const [row] = (await auditRows('tool=alpha__echo')).filter((r) => (r.arguments as { text?: string } | undefined)?.text === 'deep marker');
    expect(row).toMatchObject({ status: 'ok', channel: 'rest', server: 'alpha' });
    let level = (row!.arguments as { deep: unknown }).deep;
    let depth = 1; // `deep` itself sits one level down
    while (level !== null && typeof level === 'object') {
      level = (level as { a: unknown }).a;
      depth++;
    }
    expect(depth).toBe(MAX_STORED_DEPTH);
    expect(level).toBe(`[cut: nested deeper than ${MAX_STORED_DEPTH} levels]`);
  });

  it('stores a 100 KB argument cut to gateway.audit.maxArgumentBytes, with a marker saying what was cut', async () => {
    const text = `big:${'x'.repeat(100_000)}`;
    const response = await rest('admin', 'POST', '/tools/beta__echo/call', { text });
    expect(response.status).toBe(200);
    const [row] = (await auditRows('tool=beta__echo')).filter((r) => JSON.stringify(r.arguments).includes('big:xxx'));
    const stored = row!.arguments as { _truncated: boolean; originalBytes: number; preview: string };
    expect(stored._truncated).toBe(true);
    expect(stored.originalBytes).toBe(Buffer.byteLength(JSON.stringify({ text })));
    expect(stored.preview.startsWith('{"text":"big:xxxx')).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(stored))).toBeLessThanOrEqual(MAX_ARGUMENT_BYTES);
    await gateway.conflux.audit.flush();
    const raw = (await database.db.execute(sql`select max(octet_length(arguments::text))::int as n from audit_events`)) as unknown;
    const rows = Array.isArray(raw) ? raw : (raw as { rows: unknown[] }).rows;
    // jsonb's text form adds a space after each ':' and ','; nothing stored is anywhere near the call's size.
    expect((rows[0] as { n: number }).n).toBeLessThan(MAX_ARGUMENT_BYTES + 100);
  });

  it('never stores env or header values, secret flag values, or URL credentials, of an admin change', async () => {
    const secrets = ['s3cret', 'hv-secret-1', 'hv-secret-2', 'user:pass', 'qk-secret', 'tok-12345678', 'flag-secret-2', 'flag-secret-3'];
    // The fixture ignores arguments after its label: these only have to reach the definition.
    const flagged = stdioFixture('delta', { env: { X: 's3cret' } });
    flagged.args = [...(flagged.args as string[]), '--token', 'tok-12345678', '--Api_Key=flag-secret-2', '-password', 'flag-secret-3', '--mode', 'fast'];
    const stdio = await rest('admin', 'POST', '/servers', { name: 'delta', ...flagged });
    expect(stdio.status).toBe(201);
    const http = await rest('admin', 'POST', '/servers', { name: 'web', url: 'http://user:pass@127.0.0.1:9/mcp?apikey=qk-secret', headers: { A: 'hv-secret-1' } });
    expect(http.status).toBe(201);
    expect((await rest('admin', 'PATCH', '/servers/web', { headers: { A: 'hv-secret-2' } })).status).toBe(200);
    expect((await rest('admin', 'PUT', '/servers/delta', { ...stdioFixture('delta', { env: { X: 's3cret' } }) })).status).toBe(200);
    // Refused changes are audited too, with the same redaction.
    expect((await rest('admin', 'POST', '/servers', { name: 'web', url: 'http://user:pass@127.0.0.1:9/mcp', headers: { A: 'hv-secret-1' } })).status).toBe(409);
    expect((await rest('carol', 'POST', '/servers', { name: 'evil', url: 'http://user:pass@127.0.0.1:9/mcp?apikey=qk-secret' })).status).toBe(403);

    await gateway.conflux.audit.flush();
    const raw = (await database.db.execute(sql`select target, status, coalesce(arguments::text, '') || ' ' || coalesce(error, '') as stored from audit_events where kind = 'admin'`)) as unknown;
    const rows = (Array.isArray(raw) ? raw : (raw as { rows: unknown[] }).rows) as { target: string; status: string; stored: string }[];
    expect(rows.map((r) => `${r.target} ${r.status}`).sort()).toEqual(
      ['servers.create:delta ok', 'servers.create:web ok', 'servers.patch:web ok', 'servers.replace:delta ok', 'servers.create:web error', 'servers.create:evil denied'].sort(),
    );
    for (const row of rows) for (const secret of secrets) expect(row.stored).not.toContain(secret);
    const created = await auditRows('kind=admin&tool=servers.create%3Aweb&status=ok');
    expect(created[0]!.arguments).toMatchObject({ url: 'http://[redacted]@127.0.0.1:9/mcp?apikey=[redacted]', headers: { A: '[redacted]' } });
    const [delta] = await auditRows('kind=admin&tool=servers.create%3Adelta');
    expect(delta!.arguments).toMatchObject({ env: { X: '[redacted]' } });
    expect((delta!.arguments as { args: string[] }).args.slice(-7)).toEqual(['--token', '[redacted]', '--Api_Key=[redacted]', '-password', '[redacted]', '--mode', 'fast']);
  });

  it('bounds the rows of refusals that write two rows or none reached an upstream: calls through conflux__call_tool, invalid generated-tool arguments', async () => {
    const skipped = () => gateway.conflux.audit.drops.refusedOverLimit;
    const daveRows = async () => (await auditRows('principal=dave%40example.com')).length;
    const rowsBefore = await daveRows();
    const skippedBefore = skipped();
    let events = 0;
    // Each unknown or hidden name through the meta-tool is two refused events: the inner call and the outer one.
    for (let i = 0; i < 2 * MAX_REFUSED_PER_MINUTE; i++) {
      const response = await rest('dave', 'POST', '/tools/conflux__call_tool/call', { name: `nope-${i}` });
      expect(response.status).toBe(404);
      events += 2;
    }
    for (let i = 0; i < 2; i++) {
      expect((await rest('dave', 'POST', '/tools/conflux__call_tool/call', { name: 'beta__echo' })).status).toBe(404); // outside dave's rights
      events += 2;
    }
    // Arguments a generated tool cannot use, or that match nothing: nothing ran.
    expect((await rest('dave', 'POST', '/tools/broadcast__by_tag__red/call', {})).status).toBe(400);
    expect((await rest('dave', 'POST', '/tools/conflux__search_tools/call', { limit: 'many' })).status).toBe(400);
    expect((await rest('dave', 'POST', '/tools/conflux__call_tool/call', { name: 'conflux__call_tool' })).status).toBe(400);
    events += 3;
    const noMatch = await rest('dave', 'POST', '/tools/broadcast__by_tag__red/call', { tool: 'no_such_tool' });
    expect(((await noMatch.json()) as { result: { isError?: boolean } }).result.isError).toBe(true);
    events += 1;

    const written = (await daveRows()) - rowsBefore;
    expect(written).toBeLessThanOrEqual(MAX_REFUSED_PER_MINUTE);
    expect(written + (skipped() - skippedBefore)).toBe(events);

    // A call that reached its upstream is written in full, outer row and inner row, whatever the refusals before it.
    const allowed = await rest('dave', 'POST', '/tools/conflux__call_tool/call', { name: 'alpha__echo', arguments: { text: 'reached alpha' } });
    expect(allowed.status).toBe(200);
    const reached = (await auditRows('principal=dave%40example.com&status=ok')).filter((r) => JSON.stringify(r.arguments).includes('reached alpha'));
    expect(reached.map((r) => r.target).sort()).toEqual(['alpha__echo', 'conflux__call_tool']);
  });

  it('writes at most maxRefusedPerMinute refused calls a minute, counts the rest, and still writes allowed calls', async () => {
    const skipped = async () => {
      const metrics = await (await fetch(`${base}/metrics`)).text();
      return Number(/^conflux_audit_refused_skipped_total (\d+)/m.exec(metrics)![1]);
    };
    const skippedBefore = await skipped();
    const attempts = 2 * MAX_REFUSED_PER_MINUTE;
    for (let i = 0; i < attempts; i++) {
      const response = await rest('carol', 'POST', '/tools/alpha__echo/call', { text: `refused ${i}` });
      expect(response.status).toBe(403);
    }
    const refusedRows = (await auditRows('status=denied&principal=carol%40example.com&tool=alpha__echo')).length;
    expect(refusedRows).toBeLessThanOrEqual(MAX_REFUSED_PER_MINUTE);
    expect(refusedRows + ((await skipped()) - skippedBefore)).toBe(attempts);
    expect(gateway.conflux.audit.drops.refusedOverLimit).toBe(await skipped());

    const allowed = await rest('admin', 'POST', '/tools/alpha__echo/call', { text: 'after the flood' });
    expect(allowed.status).toBe(200);
    const rows = await auditRows('tool=alpha__echo&status=ok');
    expect(rows.some((r) => (r.arguments as { text?: string } | undefined)?.text === 'after the flood')).toBe(true);
  });
});

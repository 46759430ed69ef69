import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { AuditLog } from '../../src/observability/audit-log.js';
import { silentLogger } from '../../src/observability/logger.js';
import { AuditRepository } from '../../src/store/audit-repository.js';
import { ServerRepository } from '../../src/store/server-repository.js';
import { freshPglite, freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';

const hasPostgres = await postgresAvailable();

/** The same repository suite against embedded PGlite and real PostgreSQL. */
describe.each([
  ['pglite', async () => freshPglite()],
  ...(hasPostgres ? [['postgres', freshPostgres] as const] : []),
] as [string, () => Promise<TestDatabase>][])('store on %s', (_kind, create) => {
  let target: TestDatabase;
  let database: OpenedDatabase;

  beforeAll(async () => {
    target = await create();
    database = await target.open();
    await database.migrate();
  });
  afterAll(async () => {
    await database?.close();
    await target?.dispose();
  });

  it('migrates idempotently and answers a ping', async () => {
    await database.migrate();
    await expect(database.ping()).resolves.toBeUndefined();
  });

  it('stores, lists, updates and deletes registered servers', async () => {
    const servers = new ServerRepository(database.db);
    expect(await servers.insert('weather', { transport: 'streamable-http', url: 'http://127.0.0.1:1/mcp' })).toBe(true);
    expect(await servers.insert('alpha', { transport: 'stdio', command: 'node' })).toBe(true);
    expect(await servers.insert('weather', { transport: 'sse', url: 'http://x' })).toBe(false);
    expect((await servers.list()).map((s) => s.name)).toEqual(['alpha', 'weather']);
    expect((await servers.get('weather'))?.definition).toEqual({ transport: 'streamable-http', url: 'http://127.0.0.1:1/mcp' });
    expect(await servers.update('weather', { transport: 'sse', url: 'http://127.0.0.1:2/sse' })).toBe(true);
    const updated = (await servers.get('weather'))!;
    expect(updated.definition).toEqual({ transport: 'sse', url: 'http://127.0.0.1:2/sse' });
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(updated.createdAt.getTime());
    expect(await servers.update('missing', {})).toBe(false);
    expect(await servers.delete('weather')).toBe(true);
    expect(await servers.delete('weather')).toBe(false);
    expect(await servers.get('weather')).toBeUndefined();
  });

  it('writes audit events in batches and queries them with filters and paging', async () => {
    const audit = new AuditRepository(database.db);
    const base = Date.parse('2026-01-01T00:00:00Z');
    await audit.insertMany(
      Array.from({ length: 25 }, (_, i) => ({
        at: new Date(base + i * 60_000),
        kind: 'tool_call' as const,
        principal: i % 2 ? 'ann' : 'bob',
        sessionId: `s${i % 3}`,
        channel: 'mcp' as const,
        server: i % 5 === 0 ? 'files' : 'everything',
        target: i % 5 === 0 ? 'files__read' : 'everything__echo',
        arguments: { i, token: '[redacted]' },
        status: i === 7 ? ('error' as const) : ('ok' as const),
        error: i === 7 ? 'upstream down' : undefined,
        durationMs: i,
      })),
    );
    const all = await audit.query({ limit: 10, offset: 0 });
    expect(all.total).toBe(25);
    expect(all.events).toHaveLength(10);
    expect(all.events[0]!.arguments).toEqual({ i: 24, token: '[redacted]' }); // newest first
    const page3 = await audit.query({ limit: 10, offset: 20 });
    expect(page3.events.map((e) => e.durationMs)).toEqual([4, 3, 2, 1, 0]);
    expect((await audit.query({ principal: 'ann', limit: 100, offset: 0 })).total).toBe(12);
    expect((await audit.query({ server: 'files', limit: 100, offset: 0 })).total).toBe(5);
    const failed = await audit.query({ status: 'error', limit: 100, offset: 0 });
    expect(failed.events).toMatchObject([{ durationMs: 7, error: 'upstream down', principal: 'ann' }]);
    const window = await audit.query({ from: new Date(base + 10 * 60_000), to: new Date(base + 12 * 60_000), limit: 100, offset: 0 });
    expect(window.events.map((e) => e.durationMs)).toEqual([12, 11, 10]);
    expect((await audit.query({ target: 'files__read', principal: 'bob', limit: 100, offset: 0 })).total).toBe(3);
    // Optional fields absent, and text that needs quoting, survive the batch encoding.
    await audit.insertMany([
      { at: new Date(base + 30 * 60_000), kind: 'admin', principal: 'it\'s "me" ✓', channel: 'rest', target: 'servers.create', status: 'ok' },
    ]);
    const [admin] = (await audit.query({ kind: 'admin', limit: 1, offset: 0 })).events;
    expect(admin).toMatchObject({ principal: 'it\'s "me" ✓', target: 'servers.create', status: 'ok' });
    expect(admin!.at.getTime()).toBe(base + 30 * 60_000);
    expect([admin!.sessionId, admin!.server, admin!.arguments, admin!.error, admin!.durationMs]).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const result = (await database.db.execute(sql`select count(*)::int as n from audit_events where kind = 'admin' and arguments is null and server is null`)) as unknown;
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { n: number }[];
    expect(rows[0]!.n).toBe(1); // SQL NULLs, not JSON nulls
    // Characters PostgreSQL refuses would fail the batch at every retry: stored replaced instead.
    await audit.insertMany([
      { at: new Date(base + 31 * 60_000), kind: 'tool_call', principal: 'eve', channel: 'mcp', target: 'bad\u0000name', arguments: { 'k\u0000': 'v\uD800', list: ['\u0000'] }, status: 'error', error: '\uDC00x' },
    ]);
    const [odd] = (await audit.query({ principal: 'eve', limit: 1, offset: 0 })).events;
    expect(odd).toMatchObject({ target: 'bad\uFFFDname', arguments: { 'k\uFFFD': 'v\uFFFD', list: ['\uFFFD'] }, error: '\uFFFDx' });
    // Text that only reads like such a character once escaped is stored as it is.
    await audit.insertMany([{ at: new Date(base + 32 * 60_000), kind: 'tool_call', principal: 'fay', channel: 'mcp', target: 'C:\\u0000\\ud800', arguments: { path: '\\u0000' }, status: 'ok' }]);
    const [literal] = (await audit.query({ principal: 'fay', limit: 1, offset: 0 })).events;
    expect(literal).toMatchObject({ target: 'C:\\u0000\\ud800', arguments: { path: '\\u0000' } });
  });

  it('drops only a row the database refuses, and keeps writing after it', async () => {
    const repository = new AuditRepository(database.db);
    const audit = new AuditLog({ repository, logger: silentLogger(), redactKeys: ['token'], capacity: 100, flushIntervalMs: 60_000 });
    const event = (target: string, durationMs: number) => ({ kind: 'tool_call' as const, principal: 'dora', channel: 'mcp' as const, target, status: 'ok' as const, durationMs });
    audit.record(event('first', 1));
    audit.record(event('too-long', 3_000_000_000)); // beyond the integer column: refused at every retry
    audit.record({ ...event('third', 3), arguments: { token: 'secret', n: 1 } });
    await audit.flush();
    expect(audit.stats).toEqual({ buffered: 0, dropped: 1, written: 2 });
    audit.record(event('later', 4));
    await audit.close();
    expect(audit.stats).toEqual({ buffered: 0, dropped: 1, written: 3 });
    const { events } = await repository.query({ principal: 'dora', limit: 10, offset: 0 });
    expect(events.map((e) => e.target).sort()).toEqual(['first', 'later', 'third']);
    expect(events.find((e) => e.target === 'third')?.arguments).toEqual({ token: '[redacted]', n: 1 });
  });

  it('keeps events, rather than dropping them, while the database does not answer', async () => {
    const other = await create();
    const closed = await other.open();
    await closed.migrate();
    await closed.close();
    const audit = new AuditLog({ repository: new AuditRepository(closed.db), logger: silentLogger(), redactKeys: [], capacity: 100, flushIntervalMs: 60_000 });
    audit.record({ kind: 'tool_call', principal: 'bob', channel: 'mcp', target: 'kept', status: 'ok' });
    await audit.flush();
    expect(audit.stats).toEqual({ buffered: 1, dropped: 0, written: 0 });
    await audit.close().catch(() => {});
    await other.dispose();
  });
});

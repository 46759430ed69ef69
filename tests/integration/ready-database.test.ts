import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { createConflux } from '../../src/conflux.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { capturedLog } from '../helpers/captured-log.js';
import { freshPglite, freshPostgres, postgresAvailable, TEST_DATABASE_URL, type TestDatabase } from '../helpers/databases.js';
import { testConfig } from '../helpers/gateway.js';

interface LogLine {
  msg: string;
  err?: { message?: string };
}

/**
 * `/ready` of a gateway on `store`, before and after `breakIt` makes the database fail: what it
 * answered each time and the log line that holds the driver's own message.
 */
async function readinessAcrossFailure(store: TestDatabase, breakIt: (database: OpenedDatabase) => Promise<void>) {
  const { logger, lines } = capturedLog<LogLine>();
  const database = await store.open();
  await database.migrate();
  const conflux = createConflux(testConfig({}), { logger, database });
  try {
    await conflux.start();
    const ready = (await conflux.listen('127.0.0.1', 0)).url.replace(/\/mcp$/, '/ready');
    const before = await fetch(ready);
    const healthy = { status: before.status, body: (await before.json()) as Record<string, unknown> };
    await breakIt(database);
    const after = await fetch(ready);
    const text = await after.text();
    // Probed again while it is down: the outage is logged once, when it began.
    for (let probe = 0; probe < 2; probe++) expect((await fetch(ready)).status).toBe(503);
    const warnings = lines.filter((l) => l.msg === 'not ready: the database does not answer');
    expect(warnings).toHaveLength(1);
    return { healthy, failing: { status: after.status, text, body: JSON.parse(text) as Record<string, unknown> }, logged: warnings[0] };
  } finally {
    await conflux.stop();
    await database.close().catch(() => {}); // closed by the test already, on purpose
    await store.dispose();
  }
}

describe('/ready with a database that fails', () => {
  it('PGlite closed under the gateway: 503 "unavailable", the driver message only in the log', async () => {
    const { healthy, failing, logged } = await readinessAcrossFailure(freshPglite(), (database) => database.close());
    expect(healthy).toEqual({ status: 200, body: { ready: true, database: 'ok' } });
    expect(failing.status).toBe(503);
    expect(failing.body).toEqual({ ready: false, database: 'unavailable' });
    expect(logged?.err?.message).toBeTruthy();
    expect(failing.text).not.toContain(logged!.err!.message!);
  });
});

const hasPostgres = await postgresAvailable();

if (hasPostgres) {
  describe('/ready with a PostgreSQL database that fails', () => {
    it('a database dropped under the gateway: 503 with the SQLSTATE at most, never the message naming it', async () => {
      const store = await freshPostgres();
      const name = new URL(store.url!).pathname.slice(1);
      // Dropping it (with force) ends the gateway's connections; the next ones find no database.
      const { healthy, failing, logged } = await readinessAcrossFailure(store, async () => {
        const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
        try {
          await admin.unsafe(`drop database ${name} with (force)`);
        } finally {
          await admin.end({ timeout: 1 });
        }
      });
      expect(healthy.status).toBe(200);
      expect(failing.status).toBe(503);
      expect(failing.body.ready).toBe(false);
      expect(failing.body.database).toMatch(/^unavailable( \([A-Z0-9_]+\))?$/);
      expect(failing.text).not.toContain(name);
      expect(logged?.err?.message).toBeTruthy();
      expect(failing.text).not.toContain(logged!.err!.message!);
    });
  });
}
